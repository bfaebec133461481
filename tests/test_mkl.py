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
SHIM = Path("/x/_mkl_shim.so")

VENDOR, FLAGS = mkl.cpu_info()
# the machines where the fix should be active by default: non-Intel, AVX2 + FMA, shim built
FIXABLE = (mkl.decide(None, platform.system(), platform.machine(), VENDOR, FLAGS, False,
                      mkl.shim_path()) == "load" and torch.backends.mkl.is_available())


BASE = {"env": None, "system": "Linux", "machine": "x86_64", "vendor": "AuthenticAMD",
        "flags": AVX2, "torch_loaded": False, "shim": SHIM}


@pytest.mark.parametrize(("change", "expected"), [
    ({}, "load"),
    ({"env": "1", "vendor": "GenuineIntel"}, "load"),
    ({"env": "", "vendor": "HygonGenuine"}, "load"),
    ({"env": "0"}, "off (REGNN_MKL_VENDOR_FIX=0)"),
    ({"env": "yes"}, "off (REGNN_MKL_VENDOR_FIX='yes' is not 0 or 1)"),
    ({"system": "Darwin"}, "not applicable (Darwin x86_64: the shim is for Linux x86-64)"),
    ({"machine": "aarch64"}, "not applicable (Linux aarch64: the shim is for Linux x86-64)"),
    ({"vendor": "GenuineIntel"},
     "not needed (Intel CPU: MKL picks its branch by cpuid already)"),
    ({"flags": frozenset({"avx", "sse2"})}, "not applicable (the CPU lacks avx2, fma)"),
    ({"torch_loaded": True},
     "too late (torch was imported before regnn; import regnn first)"),
    ({"shim": None}, "unavailable (the shim was not built at install: no C compiler?)"),
])
def test_decide(change, expected):
    assert mkl.decide(**{**BASE, **change}) == expected


def test_cpu_info_parses_first_processor(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 fma\n\n"
                    "processor\t: 1\nvendor_id\t: Other\nflags\t\t: fpu\n")
    assert mkl.cpu_info(str(info)) == ("AuthenticAMD", frozenset({"fpu", "avx2", "fma"}))
    assert mkl.cpu_info(str(tmp_path / "missing")) == ("", frozenset())


def _status_in_subprocess(code: str, **env: str) -> tuple[dict, str]:
    out = subprocess.run(
        [sys.executable, "-c",
         code + "\nimport json, regnn.mkl as m; print(json.dumps(m.status()))"],
        env={**os.environ, **env}, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


@pytest.mark.skipif(not FIXABLE, reason="needs a non-Intel AVX2 CPU, torch with MKL, the shim")
def test_fix_switches_mkl_to_avx2_and_only_when_imported_first():
    # this test process imported regnn first (conftest): the fix is on
    assert mkl.status() == {"vendor_fix": "applied", "mkl_branch": "AVX2"}
    off, err = _status_in_subprocess("import regnn", REGNN_MKL_VENDOR_FIX="0")
    assert off == {"vendor_fix": "off (REGNN_MKL_VENDOR_FIX=0)", "mkl_branch": "COMPATIBLE"}
    assert "RuntimeWarning" not in err
    late, err = _status_in_subprocess("import torch, regnn")
    assert late["vendor_fix"].startswith("too late") and late["mkl_branch"] == "COMPATIBLE"
    assert "RuntimeWarning: torch was imported before regnn" in err
    assert "import regnn before torch" in err


def _ops(seed: int) -> dict[str, np.ndarray]:
    """The MKL-backed operations the model runs, on fixed inputs, in float32."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(6400, 128, generator=g), torch.randn(128, 256, generator=g)
    x, y = torch.randn(1280, 25, 50, generator=g), torch.randn(1280, 50, 25, generator=g)
    w = torch.randn(50, 16, generator=g)
    return {"mm": (a @ b).numpy(), "bmm": torch.bmm(x, y).numpy(),
            "spectral_norm": torch.linalg.matrix_norm(w, ord=2).reshape(1).numpy()}


@pytest.mark.skipif(not FIXABLE, reason="needs a non-Intel AVX2 CPU, torch with MKL, the shim")
def test_fixed_branch_computes_the_same_values(tmp_path):
    """The AVX2 branch agrees with float64 and with the compatible branch to float32 rounding."""
    mine = _ops(3)
    ref = subprocess.run(
        [sys.executable, "-c",
         f"import sys, numpy as np, regnn; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
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
