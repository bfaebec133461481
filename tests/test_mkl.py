"""The MKL vendor fix (regnn.mkl): when it applies, that it takes effect, that values stay."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from regnn import mkl

AVX2 = frozenset({"avx2", "fma", "sse2"})
AVX512 = AVX2 | mkl.AVX512_FLAGS | {"avx512_vnni"}
SHIM = Path("/x/_mkl_shim.so")

VENDOR, FLAGS = mkl.cpu_info()
# the machines where the fix should be active by default: non-Intel, AVX2 + FMA, shim built
FIXABLE = (mkl.decide(None, platform.system(), platform.machine(), VENDOR, FLAGS, False,
                      mkl.shim_path()) == "load" and torch.backends.mkl.is_available())
NEEDS_FIXABLE = pytest.mark.skipif(
    not FIXABLE, reason="needs a non-Intel AVX2 CPU, torch with MKL and the built shim")


BASE = {"env": None, "system": "Linux", "machine": "x86_64", "vendor": "AuthenticAMD",
        "flags": AVX2, "torch_loaded": False, "shim": SHIM}


@pytest.mark.parametrize(("change", "expected"), [
    ({}, "load"),
    ({"flags": AVX512}, "load"),
    ({"env": "1", "vendor": "GenuineIntel"}, "load"),
    ({"env": "", "vendor": "HygonGenuine"}, "load"),
    ({"env": "0"}, "off (REGNN_MKL_VENDOR_FIX=0)"),
    ({"env": "yes"}, "off (REGNN_MKL_VENDOR_FIX='yes' is not 0 or 1)"),
    ({"system": "Darwin"}, "not applicable (Darwin x86_64: the shim is for Linux x86-64)"),
    ({"machine": "aarch64"}, "not applicable (Linux aarch64: the shim is for Linux x86-64)"),
    ({"vendor": "GenuineIntel"},
     "not needed (Intel CPU: MKL picks its branch by cpuid already)"),
    ({"vendor": "GenuineIntel", "flags": AVX512},
     "not needed (Intel CPU: MKL picks its branch by cpuid already)"),
    ({"flags": frozenset({"avx", "sse2"})}, "not applicable (the CPU lacks avx2, fma)"),
    ({"torch_loaded": True},
     "too late (torch was imported first; apply the fix before importing torch)"),
    ({"shim": None}, "unavailable (the shim was not built at install: no C compiler?)"),
])
def test_decide(change, expected):
    assert mkl.decide(**{**BASE, **change}) == expected


def _cpuinfo(tmp_path: Path, vendor: str, flags: str) -> str:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: Some CPU\n"
                    f"flags\t\t: {flags}\n\nprocessor\t: 1\nvendor_id\t: Other\nflags\t\t: fpu\n")
    return str(info)


# fake /proc/cpuinfo -> what decide says on Linux x86-64, and the branch family MKL picks then
@pytest.mark.parametrize(("vendor", "flags", "verdict", "family"), [
    ("GenuineIntel", "fpu sse2 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl",
     "not needed (Intel CPU: MKL picks its branch by cpuid already)", "AVX-512"),
    ("AuthenticAMD", "fpu sse2 avx avx2 fma", "load", "AVX2"),
    ("AuthenticAMD", "fpu sse2 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl "
     "avx512_vnni", "load", "AVX-512"),
    # AVX-512 foundation alone (no BW/DQ/VL): MKL's AVX-512 kernels need all five subsets
    ("AuthenticAMD", "fpu sse2 avx avx2 fma avx512f", "load", "AVX2"),
    ("AuthenticAMD", "fpu sse2 sse4_2 avx", "not applicable (the CPU lacks avx2, fma)",
     mkl.GENERIC),
])
def test_decide_and_branch_family_from_cpuinfo(tmp_path, vendor, flags, verdict, family):
    got_vendor, got_flags = mkl.cpu_info(_cpuinfo(tmp_path, vendor, flags))
    assert got_vendor == vendor and got_flags == frozenset(flags.split())
    assert mkl.decide(None, "Linux", "x86_64", got_vendor, got_flags, False, SHIM) == verdict
    assert mkl.best_branch_family(got_flags) == family


def test_non_linux_is_not_applicable_whatever_the_cpu(tmp_path):
    vendor, flags = mkl.cpu_info(_cpuinfo(tmp_path, "AuthenticAMD", "avx2 fma avx512f"))
    for system, machine in (("Darwin", "x86_64"), ("Windows", "AMD64"), ("Linux", "aarch64")):
        assert mkl.decide(None, system, machine, vendor, flags, False, SHIM).startswith(
            "not applicable")


@pytest.mark.parametrize(("branch", "family"), [
    ("COMPATIBLE", mkl.GENERIC), ("SSE2", mkl.GENERIC), ("AVX2", "AVX2"), ("AVX2_E1", "AVX2"),
    ("AVX512", "AVX-512"), ("AVX512_E1", "AVX-512"), ("AVX512_E4", "AVX-512"),
    ("AVX512_MIC", "AVX512_MIC"), ("AVX", "AVX"), (None, None),
])
def test_branch_family(branch, family):
    assert mkl.branch_family(branch) == family


def test_cpu_info_parses_first_processor(tmp_path):
    path = _cpuinfo(tmp_path, "AuthenticAMD", "fpu avx2 fma")
    assert mkl.cpu_info(path) == ("AuthenticAMD", frozenset({"fpu", "avx2", "fma"}))
    assert mkl.cpu_model(path) == "Some CPU"
    assert mkl.cpu_info(str(tmp_path / "missing")) == ("", frozenset())
    assert mkl.cpu_model(str(tmp_path / "missing")) == ""


def _status_in_subprocess(code: str, **env: str) -> tuple[dict, str]:
    out = subprocess.run(
        [sys.executable, "-c",
         code + "\nimport json, regnn.mkl as m; print(json.dumps(m.status()))"],
        env={**os.environ, **env}, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


APPLY = "import regnn.mkl; regnn.mkl.apply_vendor_fix()"


@NEEDS_FIXABLE
def test_fix_leaves_the_generic_branch_for_the_best_one_and_only_when_applied_first():
    # this test process applied the fix first (conftest): MKL runs the best branch the CPU's
    # flags allow (AVX2, or an AVX-512 branch), not the generic one
    now = mkl.status()
    assert now["vendor_fix"] == mkl.APPLIED
    assert mkl.branch_family(now["mkl_branch"]) == mkl.best_branch_family(FLAGS)
    assert mkl.branch_family(now["mkl_branch"]) != mkl.GENERIC
    off, err = _status_in_subprocess(APPLY, REGNN_MKL_VENDOR_FIX="0")
    assert off["vendor_fix"] == "off (REGNN_MKL_VENDOR_FIX=0)"
    assert mkl.branch_family(off["mkl_branch"]) == mkl.GENERIC
    assert "RuntimeWarning" not in err
    late, err = _status_in_subprocess("import torch; " + APPLY)
    assert late["vendor_fix"].startswith("too late")
    assert mkl.branch_family(late["mkl_branch"]) == mkl.GENERIC
    assert "RuntimeWarning: torch was imported before regnn.mkl.apply_vendor_fix()" in err
    # importing regnn (any of it) changes nothing: no fix, MKL's own choice
    plain, err = _status_in_subprocess("import regnn, regnn.schema, regnn.cli, regnn.api")
    assert plain["vendor_fix"] == "not attempted"
    assert mkl.branch_family(plain["mkl_branch"]) == mkl.GENERIC
    # the command line is an entry point: it applies the fix before torch loads
    cli, _ = _status_in_subprocess(
        "import sys; from regnn.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass")
    assert cli == now


def test_import_regnn_has_no_side_effect():
    code = ("import sys, regnn, regnn.schema, regnn.mkl as m\n"
            "print(m.status.__module__, 'torch' in sys.modules, m._state)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == ["regnn.mkl", "False", "None"]


def test_machine_report_names_the_cpu_and_the_branch():
    report = mkl.machine_report()
    assert report["vendor"] == VENDOR
    assert set(report["vector_extensions"]) <= FLAGS
    assert report["cores"] == os.cpu_count() and report["usable_cores"] >= 1
    assert report["mkl_branch"] == mkl.status()["mkl_branch"]
    assert report["best_branch_family"] == mkl.best_branch_family(FLAGS)
    printed = subprocess.run([sys.executable, "-m", "regnn.mkl"], capture_output=True,
                             text=True, check=True, timeout=120).stdout
    assert f"mkl_branch           {report['mkl_branch']}" in printed
    assert "vector_extensions" in printed and "cores" in printed


def _ops(seed: int) -> dict[str, np.ndarray]:
    """The MKL-backed operations the model runs, on fixed inputs, in float32."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(6400, 128, generator=g), torch.randn(128, 256, generator=g)
    x, y = torch.randn(1280, 25, 50, generator=g), torch.randn(1280, 50, 25, generator=g)
    w = torch.randn(50, 16, generator=g)
    return {"mm": (a @ b).numpy(), "bmm": torch.bmm(x, y).numpy(),
            "spectral_norm": torch.linalg.matrix_norm(w, ord=2).reshape(1).numpy()}


@NEEDS_FIXABLE
def test_fixed_branch_computes_the_same_values(tmp_path):
    """The fixed branch (AVX2 or AVX-512) agrees with float64 and with the compatible branch
    to float32 rounding."""
    mine = _ops(3)
    ref = subprocess.run(
        [sys.executable, "-c",
         f"import sys, numpy as np, regnn.mkl; regnn.mkl.apply_vendor_fix()\n"
         f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
         f"from test_mkl import _ops\nnp.savez({str(tmp_path / 'off.npz')!r}, **_ops(3))"],
        env={**os.environ, "REGNN_MKL_VENDOR_FIX": "0"}, capture_output=True, text=True,
        timeout=120)
    assert ref.returncode == 0, ref.stderr
    off = np.load(tmp_path / "off.npz")
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(6400, 128, generator=g), torch.randn(128, 256, generator=g)
    exact = a.double() @ b.double()
    scale = float(exact.abs().max())
    assert np.abs(mine["mm"] - exact.numpy()).max() <= 1e-5 * scale
    for name, value in mine.items():
        np.testing.assert_allclose(value, off[name], rtol=1e-4, atol=2e-5 * np.abs(value).max(),
                                   err_msg=name)
