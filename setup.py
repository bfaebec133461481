"""Builds the one compiled piece of regnn: the optional MKL vendor shim (see src/regnn/mkl.py).

Everything else about the package is declared in pyproject.toml. The shim is optional: where
no C compiler is available the install still succeeds and regnn runs without it (MKL then
keeps its vendor-dependent choice of code branch).
"""

import platform
import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64"):
    ext_modules.append(Extension("regnn._mkl_shim", ["src/regnn/_mkl_shim.c"], optional=True))

setup(ext_modules=ext_modules)
