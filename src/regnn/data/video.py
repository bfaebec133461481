"""Speaker video frames: a folder of ``1.png ... 751.png`` or an ``.mp4`` file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from regnn.errors import DataError


def read_frames(path: Path, frames: int, size: int) -> np.ndarray:
    """Return ``(frames, size, size, 3)`` uint8 frames, resized; short videos repeat the last."""
    out = np.zeros((frames, size, size, 3), dtype=np.uint8)
    if path.is_dir():
        pngs = sorted(path.glob("*.png"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
        if not pngs:
            raise DataError("frame folder holds no PNG files", path=path, kind="missing-file")
        images = (Image.open(p) for p in pngs[:frames])
    else:
        import imageio.v3 as iio

        try:
            images = (Image.fromarray(f) for f in iio.imiter(path, plugin="pyav")
                      ) if _has_pyav() else (Image.fromarray(f) for f in iio.imiter(path))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read video: {exc}", path=path, kind="unreadable") from None
    count = 0
    for t, img in enumerate(images):
        if t >= frames:
            break
        out[t] = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
        count += 1
    if count == 0:
        raise DataError("video holds no frames", path=path, kind="unreadable")
    out[count:] = out[count - 1]
    return out


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True
