"""Atomic output: write to a temporary file in the target folder, then rename over the target.

A killed process therefore never leaves a half-written file under the final name. The
published file gets the permissions the user's umask gives a new file (``mkstemp`` alone would
leave every output readable by its owner only).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    The temporary file keeps ``target``'s suffix (or ``suffix``) so libraries that choose a
    format from the extension (soundfile, imageio) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # the mode an ordinary new file would have (mkstemp: 0600)
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_open(target: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """``open`` that publishes the file only when the ``with`` block succeeds."""
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_text(target: str | Path, text: str) -> Path:
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(target)


def write_json(target: str | Path, obj: Any) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default))


def save_npy(target: str | Path, array: np.ndarray) -> Path:
    with atomic_open(target, "wb") as fh:
        fh_b: BinaryIO = fh
        np.save(fh_b, array)
    return Path(target)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextmanager
def staged_folder(target: str | Path, replace: bool = False) -> Iterator[Path]:
    """Build a folder beside ``target`` and move it into place only when the ``with`` block
    succeeds: a failure (an exception, a full disk) removes the partial build and leaves
    ``target`` as it was. With ``replace``, an existing ``target`` is swapped out and deleted
    after the new folder is in place; without it, ``target`` must not exist or be empty."""
    target = Path(target)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and any(target.iterdir()) and not replace:
        raise FileExistsError(f"{target} is not empty")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp made it 0700
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.rename(target, old / "previous")
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
