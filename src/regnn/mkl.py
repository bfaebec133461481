"""MKL's code branch on non-Intel CPUs, and the vendor fix regnn applies before torch loads.

PyTorch's x86 wheels carry Intel MKL for their float32 matrix products (``torch.mm``,
``bmm``, ``nn.Linear``; LAPACK too). MKL chooses a code branch per CPU, but it first calls
its internal ``mkl_serv_intel_cpu_true()`` and, on any CPU that is not Intel's, takes the
generic SSE2 "compatible" branch whatever the CPU supports: ``mkl_serv_cbwr_get_auto_branch``
reports 2 (``MKL_CBWR_COMPATIBLE``) on the AMD EPYC development machine, which has AVX2 and
FMA. There a 6400 x 128 x 256 product ran at 72-94 GFLOP/s on 2 threads, and at 137-143 with
the fix (``benchmarks/bench_mkl.py`` measures it on your machine).

**The fix.** ``_mkl_shim.c`` is a one-function shared library, built at install time, that
defines ``mkl_serv_intel_cpu_true`` to return 1. Loaded with ``RTLD_GLOBAL`` *before* torch,
it is in the global symbol scope when Python loads torch's libraries (with ``RTLD_NOW``), so
the PLT slot through which MKL calls that function binds to the shim. MKL then chooses its
branch from the CPU's instruction set (cpuid) alone: ``MKL_CBWR_AVX2`` on that machine. The
same computations run, with different kernels: results agree with the compatible branch's to
float32 rounding, not bit for bit. A given machine, branch and seed still give the same
output every time.

Which branch MKL then takes depends on the CPU's flags (:func:`best_branch_family`): an
AVX-512 branch (``AVX512``, ``AVX512_E1``...) where the CPU has the AVX-512 subsets MKL's
AVX-512 kernels use (F, CD, BW, DQ, VL), otherwise ``AVX2``. On the AVX-512 AMD EPYC
machines MKL picks ``AVX512_E1`` and the model's products run 1.11-1.60x faster than on the
generic branch (``benchmarks/bench_mkl.py``, 2026-12-03), so the fix stays on there too.

**When it is applied.** :func:`apply_vendor_fix` is called by regnn's entry points (the
``regnn`` command, ``python -m regnn``, the tests and the benchmarks); ``import regnn`` itself
changes nothing in the process. In a notebook or your own script, call
``regnn.mkl.apply_vendor_fix()`` before importing torch. It loads the shim when all of these
hold:

* torch is not imported yet (called after torch, it keeps MKL's own choice and warns with a
  ``RuntimeWarning`` saying so);
* Linux on x86-64, and the shim was built (the install needs a C compiler for it; without
  one the install still succeeds and the fix is reported as unavailable);
* the CPU's vendor is not ``GenuineIntel`` (an Intel CPU gets MKL's best branch anyway) and
  it has AVX2 and FMA (the instructions of the branch MKL then picks);
* ``REGNN_MKL_VENDOR_FIX`` is not ``0``. ``REGNN_MKL_VENDOR_FIX=0`` turns it off, ``=1``
  applies it on an Intel CPU too.

:func:`status` says what happened and which branch MKL runs; ``train.json``,
``generation.json`` and ``benchmarks/bench_model.py`` record it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import warnings
from pathlib import Path

ENV = "REGNN_MKL_VENDOR_FIX"

APPLIED = "applied"

# MKL_CBWR_* branch codes of mkl_service.h (what mkl_serv_cbwr_get_auto_branch returns)
BRANCHES = {
    1: "AUTO", 2: "COMPATIBLE", 3: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2", 9: "AVX",
    10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1",
    15: "AVX512_E2", 16: "AVX512_E3", 17: "AVX512_E4", 18: "AVX2_E1", 19: "AVX512_E5",
}

GENERIC = "generic"  # the family of MKL's vendor-independent branches (COMPATIBLE, SSE2)

# the AVX-512 subsets MKL's AVX-512 (Skylake-server and later) kernels need
AVX512_FLAGS = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})

_state: str | None = None  # what apply_vendor_fix() decided, for status()


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """``(vendor_id, flags)`` of the first processor listed in ``path`` (``("", {})`` if none)."""
    vendor, flags = "", frozenset()
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "flags":
                    flags = frozenset(value.split())
                    break
    except OSError:
        pass
    return vendor, flags


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """The ``model name`` of the first processor listed in ``path`` (``""`` if none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return ""


def best_branch_family(flags: frozenset[str]) -> str:
    """The family of the best branch MKL can choose from these CPU flags alone (what it picks
    on an Intel CPU, and with the vendor fix on any other): ``"AVX-512"``, ``"AVX2"``, or
    :data:`GENERIC` when the CPU lacks AVX2 or FMA (the fix is not applied there)."""
    if AVX512_FLAGS.issubset(flags):
        return "AVX-512"
    if flags.issuperset({"avx2", "fma"}):
        return "AVX2"
    return GENERIC


def branch_family(branch: str | None) -> str | None:
    """The family of one of MKL's branch names: ``"AVX512_E1"`` -> ``"AVX-512"``,
    ``"AVX2"`` -> ``"AVX2"``, ``"COMPATIBLE"``/``"SSE2"`` -> :data:`GENERIC`; other names
    (SSE4, AVX, the Xeon Phi ``_MIC`` branches) are returned unchanged, ``None`` stays."""
    if branch is None:
        return None
    if branch in ("COMPATIBLE", "SSE2"):
        return GENERIC
    if branch.startswith("AVX512") and "MIC" not in branch:
        return "AVX-512"
    if branch.startswith("AVX2"):
        return "AVX2"
    return branch


def shim_path() -> Path | None:
    """The built shim next to this module, or ``None`` if the install did not build it."""
    here = Path(__file__).parent
    found = sorted(here.glob("_mkl_shim*.so"))
    return found[0] if found else None


def decide(env: str | None, system: str, machine: str, vendor: str, flags: frozenset[str],
           torch_loaded: bool, shim: Path | None) -> str:
    """``"load"`` when the shim should be loaded, otherwise why it is not (the reported state)."""
    if env is not None and env not in ("", "0", "1"):
        return f"off ({ENV}={env!r} is not 0 or 1)"
    if env == "0":
        return f"off ({ENV}=0)"
    if system != "Linux" or machine.lower() not in ("x86_64", "amd64"):
        return f"not applicable ({system} {machine}: the shim is for Linux x86-64)"
    if vendor == "GenuineIntel" and env != "1":
        return "not needed (Intel CPU: MKL picks its branch by cpuid already)"
    missing = sorted({"avx2", "fma"} - flags)
    if missing:
        return f"not applicable (the CPU lacks {', '.join(missing)})"
    if torch_loaded:
        return "too late (torch was imported first; apply the fix before importing torch)"
    if shim is None:
        return "unavailable (the shim was not built at install: no C compiler?)"
    return "load"


def apply_vendor_fix() -> str:
    """Load the shim if :func:`decide` says so; returns (and remembers) the outcome."""
    global _state
    if _state is not None:
        return _state
    vendor, flags = cpu_info()
    shim = shim_path()
    verdict = decide(os.environ.get(ENV), platform.system(), platform.machine(), vendor, flags,
                     "torch" in sys.modules, shim)
    if verdict == "load":
        try:
            ctypes.CDLL(str(shim), mode=ctypes.RTLD_GLOBAL)
            verdict = APPLIED
        except OSError as exc:
            verdict = f"failed ({shim}: {exc})"
    elif verdict.startswith("too late"):
        warnings.warn(
            "torch was imported before regnn.mkl.apply_vendor_fix(), so MKL keeps its generic "
            f"SSE2 code on this {vendor or 'non-Intel'} CPU (the model's products run up to "
            "~1.7x slower): call regnn.mkl.apply_vendor_fix() before importing torch, or set "
            f"{ENV}=0 to silence this (see regnn.mkl)",
            RuntimeWarning, stacklevel=2)
    _state = verdict
    return verdict


def mkl_branch() -> str | None:
    """The code branch MKL runs in this process (``"AVX2"``, ``"COMPATIBLE"``, ...), or
    ``None`` when torch has no MKL or the query is not exported. Imports torch."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        code = int(ctypes.CDLL(str(lib)).mkl_serv_cbwr_get_auto_branch())
    except (OSError, AttributeError):
        return None
    return BRANCHES.get(code, f"code {code}")


def status() -> dict[str, str | None]:
    """``{"vendor_fix": what apply_vendor_fix decided, "mkl_branch": MKL's branch now}``."""
    return {"vendor_fix": _state or "not attempted", "mkl_branch": mkl_branch()}


VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq",
                "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")


def machine_report() -> dict[str, object]:
    """What a benchmark or CI log should say about the CPU it ran on: model, vendor, the
    vector extensions MKL cares about, the cores this process may use, and MKL's branch
    (after :func:`apply_vendor_fix`, which this calls first). Imports torch."""
    vendor, flags = cpu_info()
    fix = apply_vendor_fix()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu_model() or platform.processor() or platform.machine(),
        "vendor": vendor,
        "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
        "cores": os.cpu_count(), "usable_cores": usable,
        "vendor_fix": fix, "mkl_branch": mkl_branch(),
        "best_branch_family": best_branch_family(flags),
    }


if __name__ == "__main__":  # ``python -m regnn.mkl``: the machine report (CI prints it)
    for key, value in machine_report().items():
        if isinstance(value, list):
            value = " ".join(value) or "-"
        print(f"{key:20s} {value}")
