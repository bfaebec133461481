"""Session-grouped train/val/test splits (``regnn data split``).

A *session* is a person path without its last two parts (person, clip):
``NoXI/010_2016-03-25_Paris/Expert_video/3`` belongs to ``NoXI/010_2016-03-25_Paris``. All
clips of a session go to the same split, so no person or conversation is seen both in
training and in evaluation. Sessions are shuffled with the seed, every split with a positive
fraction first receives one session, and each further session goes to the split furthest
below its target number of rows. The same seed always gives the same split.

Input layout of ``split_dataset``: a *pool* dataset, ``<root>/all.csv`` (header
``,speaker_path,listener_path``) with its person files under ``<root>/all/<modality>/...``
(the REACT layout with ``all`` in place of a split name). The split lists are written to
``<root>/{train,val,test}.csv`` and every person's files are hard-linked (or copied, or
symlinked) into ``<root>/<split>/...``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from regnn.data import layout
from regnn.errors import ConfigError, DataError
from regnn.utils.io import atomic_path, write_json, write_text

POOL = "all"
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
LINK_MODES = ("hardlink", "copy", "symlink")
#: (modality folder, suffix) of the person files moved with a split; "" = a PNG frame folder
MODALITIES: tuple[tuple[str, str], ...] = (
    (layout.EMOTION_DIR, ".csv"), (layout.AUDIO_DIR, ".wav"), (layout.VIDEO_DIR, ""),
    (layout.VIDEO_DIR, ".mp4"), (layout.THREEDMM_DIR, ".npy"))


def session_of(person: str) -> str:
    """``site/session`` of a person path ``site/session/person/clip`` (longer paths keep all
    but the last two parts)."""
    parts = person.strip("/").split("/")
    if len(parts) < 3:
        raise ValueError(f"person path {person!r} does not have the form "
                         "site/session/person/clip")
    return "/".join(parts[:-2])


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    f = tuple(float(x) for x in fractions)
    if len(f) != 3 or any(not np.isfinite(x) or x < 0 for x in f) or sum(f) <= 0:
        raise ConfigError(f"fractions {list(fractions)} must be three non-negative numbers "
                          "(train val test) with a positive sum")
    total = sum(f)
    return (f[0] / total, f[1] / total, f[2] / total)


def assign_sessions(rows_per_session: dict[str, int],
                    fractions: Sequence[float] = DEFAULT_FRACTIONS,
                    seed: int = 0) -> dict[str, str]:
    """Map each session to ``train``/``val``/``test`` (see the module docstring)."""
    frac = check_fractions(fractions)
    wanted = [s for s, f in zip(layout.SPLITS, frac) if f > 0]
    sessions = sorted(rows_per_session)
    if len(sessions) < len(wanted):
        raise ConfigError(f"{len(sessions)} sessions cannot fill {len(wanted)} splits "
                          f"({', '.join(wanted)}); every split needs a session of its own")
    rng = np.random.default_rng(seed)
    order = [sessions[i] for i in rng.permutation(len(sessions))]
    total = sum(rows_per_session.values())
    target = {s: f * total for s, f in zip(layout.SPLITS, frac)}
    rows = dict.fromkeys(layout.SPLITS, 0)
    out: dict[str, str] = {}
    seeded = sorted(wanted, key=lambda s: -target[s])
    for session, split in zip(order, seeded):
        out[session] = split
        rows[split] += rows_per_session[session]
    for session in order[len(seeded):]:
        split = max(wanted, key=lambda s: (target[s] - rows[s], target[s]))
        out[session] = split
        rows[split] += rows_per_session[session]
    return out


def split_rows(speakers: Sequence[str], listeners: Sequence[str],
               fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0,
               source: Path | None = None) -> dict[str, list[int]]:
    """Row indices of each split, grouped by session. A row whose two persons belong to
    different sessions is an error (row numbers are 1-based data rows of ``source``)."""
    sessions: list[str] = []
    for r, (s, li) in enumerate(zip(speakers, listeners), start=1):
        try:
            a, b = session_of(s), session_of(li)
        except ValueError as exc:
            raise DataError(str(exc), path=source, row=r, kind="bad-split") from None
        if a != b:
            raise DataError(f"speaker {s!r} and listener {li!r} belong to different sessions "
                            f"({a!r} vs {b!r}); a dyad clip is one session", path=source,
                            row=r, kind="bad-split")
        sessions.append(a)
    assignment = assign_sessions(dict(Counter(sessions)), fractions, seed)
    out: dict[str, list[int]] = {s: [] for s in layout.SPLITS}
    for r, session in enumerate(sessions):
        out[assignment[session]].append(r)
    return out


def split_csv_text(speakers: Sequence[str], listeners: Sequence[str]) -> str:
    rows = [",speaker_path,listener_path"]
    rows += [f"{i},{s},{li}" for i, (s, li) in enumerate(zip(speakers, listeners))]
    return "\n".join(rows) + "\n"


def place_file(src: Path, dst: Path, mode: str = "hardlink") -> None:
    """Publish ``src`` under ``dst`` atomically by hard link (falling back to a copy across
    file systems), copy or symlink."""
    if mode not in LINK_MODES:
        raise ConfigError(f"unknown link mode {mode!r}; expected one of {', '.join(LINK_MODES)}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "copy":
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        return
    tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex[:8]}"
    try:
        if mode == "symlink":
            os.symlink(os.path.abspath(src), tmp)
        else:
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()


def _person_files(root: Path, split: str, person: str) -> list[tuple[Path, Path]]:
    """(file, path relative to ``<root>/<split>``) of every file stored for ``person``."""
    out: list[tuple[Path, Path]] = []
    base = root / split
    for modality, suffix in MODALITIES:
        found = layout.resolve(root, split, modality, person, suffix)
        if found is None:
            continue
        if found.is_dir():
            if suffix:
                continue
            out += [(f, f.relative_to(base)) for f in sorted(found.iterdir()) if f.is_file()]
        elif suffix:
            out.append((found, found.relative_to(base)))
    return out


def split_dataset(root: str | Path, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  seed: int = 0, link: str = "hardlink", force: bool = False,
                  pool: str = POOL, progress: bool = False) -> dict:
    """Split the pool ``<root>/<pool>.csv`` + ``<root>/<pool>/`` into train/val/test by session.

    Writes the three split lists and links the person files; returns a summary. Refuses to
    overwrite existing split lists unless ``force``. Build the appropriateness matrices
    afterwards (``regnn data neighbours``; the command does it by default).
    """
    root = Path(root)
    list_file = root / f"{pool}.csv"
    if not list_file.is_file():
        raise DataError(f"no single list of dyad clips: expected {pool}.csv (header "
                        f"',speaker_path,listener_path') with the person files under "
                        f"{root / pool}/", path=list_file, kind="missing-file")
    if link not in LINK_MODES:
        raise ConfigError(f"unknown link mode {link!r}; expected one of {', '.join(LINK_MODES)}")
    existing = [str(root / f"{s}.csv") for s in layout.SPLITS if (root / f"{s}.csv").exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")
    speakers, listeners = layout.read_split_csv(root, pool)
    rows = split_rows(speakers, listeners, fractions, seed, source=list_file)
    persons_of = {s: list(dict.fromkeys([speakers[i] for i in r] + [listeners[i] for i in r]))
                  for s, r in rows.items()}
    # find every file before writing anything, so a missing file leaves the dataset untouched
    plan: list[tuple[Path, Path]] = []
    for split, persons in persons_of.items():
        for person in persons:
            files = _person_files(root, pool, person)
            if not any(rel.parts[0] == layout.EMOTION_DIR for _, rel in files):
                raise DataError(f"attribute CSV of {person!r} not found", kind="missing-file",
                                path=layout.expected_path(root, pool, layout.EMOTION_DIR,
                                                          person, ".csv"))
            plan += [(src, root / split / rel) for src, rel in files]
    iterator = plan
    if progress:
        from tqdm import tqdm

        iterator = tqdm(plan, desc="split: link files", unit="file", leave=False)
    for src, dst in iterator:
        if dst.exists() and dst.samefile(src):
            continue
        place_file(src, dst, link)
    summary: dict = {"root": str(root), "seed": seed, "fractions": list(check_fractions(fractions)),
                     "link": link, "splits": {}}
    for split in layout.SPLITS:
        idx = rows[split]
        write_text(root / f"{split}.csv", split_csv_text([speakers[i] for i in idx],
                                                          [listeners[i] for i in idx]))
        sessions = sorted({session_of(speakers[i]) for i in idx})
        summary["splits"][split] = {"rows": len(idx), "items": 2 * len(idx),
                                    "sessions": len(sessions), "session_names": sessions}
    write_json(root / "split.json", summary)
    return summary


def write_matrices(root: Path, force: bool, progress: bool = False) -> None:
    """Build and write every split's appropriateness matrix with the default settings of
    ``regnn data neighbours``, printing a line each (warnings on stderr)."""
    import sys

    from regnn.data.neighbours import build_neighbours
    from regnn.utils.io import save_npy

    targets = {s: layout.matrix_file(root, s) for s in layout.SPLITS}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")
    for split, target in targets.items():
        res = build_neighbours(root, split, progress=progress)
        save_npy(target, res.matrix.astype("float64"))
        s = res.summary
        print(f"  {target.name}: {s['items']} items, {s['appropriate_mean']:.2f} appropriate "
              f"per speaker (min {s['appropriate_min']}, max {s['appropriate_max']}), "
              f"{s['isolated']} isolated")
        for w in res.grouping.warnings:
            print(f"  warning: {split}: {w}", file=sys.stderr)
