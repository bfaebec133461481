"""regnn: multiple appropriate facial reaction generation (REGNN, Xu et al.) on the REACT layout.

Importing regnn changes nothing in the process. Entry points (the ``regnn`` command,
``python -m regnn``, the tests, the benchmarks) apply the MKL vendor fix before torch loads;
in a notebook or script of your own call ``regnn.mkl.apply_vendor_fix()`` first (see
:mod:`regnn.mkl`).
"""

__version__ = "0.1.0"
