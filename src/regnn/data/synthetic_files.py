"""Writing the synthetic dataset's files (:mod:`regnn.data.synthetic`): attribute CSVs, WAVs,
rendered frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from regnn import schema
from regnn.utils.io import atomic_open, atomic_path


def _upsample(per_frame: np.ndarray, sample_rate: int) -> np.ndarray:
    """Linear interpolation of a 25 fps series to ``sample_rate`` (a multiple of 25), float32."""
    hop = sample_rate // schema.FPS
    v = np.asarray(per_frame, dtype=np.float32)
    nxt = np.append(v[1:], v[-1])
    frac = np.arange(hop, dtype=np.float32) / hop
    return (v[:, None] + (nxt - v)[:, None] * frac[None, :]).reshape(-1)


def _stable_hash(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def _write_csv(path: Path, header: str, values: np.ndarray) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        np.savetxt(fh, values, fmt="%.6f", delimiter=",", header=header, comments="")


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), samples, rate, subtype="PCM_16", format="WAV")


def _write_frames(folder: Path, attrs: np.ndarray, size: int) -> None:
    """PNG frames ``1.png ... N.png`` of a simple drawn face following the attributes."""
    import shutil
    import tempfile

    from PIL import Image, ImageDraw

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    s = size / 64.0
    for t, a in enumerate(attrs, start=1):
        img = Image.new("RGB", (size, size), (235, 235, 240))
        d = ImageDraw.Draw(img)
        d.ellipse([8 * s, 4 * s, 56 * s, 60 * s], fill=(240, 200, 170), outline=(90, 60, 40))
        brow = 20 * s - 5 * s * (a[0] + a[1]) / 2 + 3 * s * a[2]
        for x0 in (18, 36):
            d.line([x0 * s, brow, (x0 + 10) * s, brow], fill=(60, 40, 30), width=max(1, int(2 * s)))
        eye_h = 3 * s * (1 - 0.6 * a[4])
        for cx in (23, 41):
            d.ellipse([(cx - 3) * s, 27 * s - eye_h, (cx + 3) * s, 27 * s + eye_h],
                      fill=(40, 40, 40))
        open_h = 1 * s + 8 * s * max(a[13], a[14])
        smile = 3 * s * (a[7] - a[9])  # corners up (AU12) or down (AU15)
        top = 42 * s - smile
        d.chord([22 * s, top - open_h / 2, 42 * s, top + open_h], 0, 180, fill=(150, 40, 50))
        img.save(tmp_dir / f"{t}.png", format="PNG", compress_level=1)
    # the folder appears complete or not at all
    if folder.exists():
        shutil.rmtree(folder)
    tmp_dir.rename(folder)
