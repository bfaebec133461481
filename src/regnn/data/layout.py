"""The REACT on-disk layout: split lists, person paths and their quirks, attribute CSVs,
appropriateness matrices. See ``react-protocol.md`` section 2.

Everything here validates as it reads and reports problems as :class:`Problem` records that
name the file, the row and what was expected. The reader raises the first one as a
:class:`~regnn.errors.DataError`; ``regnn data check`` lists them all.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regnn import schema
from regnn.errors import DataError

SPLITS = ("train", "val", "test")
EMOTION_DIR = "Emotion"
AUDIO_DIR = "Audio_files"
VIDEO_DIR = "Video_files"
THREEDMM_DIR = "3D_FV_files"
ALL_MATRIX_FILE = "Approprirate_facial_reaction.npy"  # (sic), as released
DATA_INDICES_FILE = "data_indices.csv"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: where it is and what was expected."""

    kind: str
    path: Path
    message: str
    row: int | None = None

    def __str__(self) -> str:
        where = str(self.path) + (f", row {self.row}" if self.row is not None else "")
        return f"[{self.kind}] {where}: {self.message}"

    def error(self) -> DataError:
        return DataError(self.message, path=self.path, row=self.row, kind=self.kind)


def matrix_file(root: Path, split: str) -> Path:
    return Path(root) / f"neighbour_emotion_{split}.npy"


# --------------------------------------------------------------------------- split lists
def read_split_csv(root: str | Path, split: str) -> tuple[list[str], list[str]]:
    """Read ``<root>/<split>.csv`` (header ``,speaker_path,listener_path``).

    Returns the speaker and listener person paths of the n dyad rows, as the official
    loaders do (column 1 and 2; column 0 is an index).
    """
    path = Path(root) / f"{split}.csv"
    if not path.is_file():
        raise DataError("split list not found (expected a CSV with header "
                        "',speaker_path,listener_path')", path=path, kind="missing-file")
    speakers: list[str] = []
    listeners: list[str] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise DataError("split list is empty", path=path, kind="bad-split")
    header = [c.strip() for c in rows[0]]
    if len(header) < 3 or header[1:3] != ["speaker_path", "listener_path"]:
        raise DataError(f"header is {rows[0]!r}; expected ',speaker_path,listener_path'",
                        path=path, row=0, kind="bad-split")
    for r, row in enumerate(rows[1:], start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 3 or not row[1].strip() or not row[2].strip():
            raise DataError(f"expected 3 fields (index, speaker_path, listener_path), got {row!r}",
                            path=path, row=r, kind="bad-split")
        speakers.append(row[1].strip().strip("/"))
        listeners.append(row[2].strip().strip("/"))
    if not speakers:
        raise DataError("split list has no rows", path=path, kind="bad-split")
    return speakers, listeners


# --------------------------------------------------------------------------- path quirks
_NOXI_PERSON = {"Expert_video": "P1", "Novice_video": "P2"}
_RECOLA_FIRST = ("P25", "P41", "P45")
_RECOLA_SECOND = ("P26", "P42", "P46")


def person_path_variants(person: str) -> list[str]:
    """Spellings under which one person path may be stored in released copies of REACT.

    REACT 2024 names NoXI persons ``P1``/``P2`` in the Emotion folder where the split lists
    (and the video folder) say ``Expert_video``/``Novice_video``, and RECOLA persons
    ``P25/P26``, ``P41/P42``, ``P45/P46`` appear as ``P1``/``P2``. The literal path comes first.
    """
    parts = person.split("/")
    out = [person]
    if len(parts) < 3:
        return out
    site, who = parts[0], parts[-2]
    alts: list[str] = []
    if site.lower() == "noxi":
        inverse = {v: k for k, v in _NOXI_PERSON.items()}
        alts = [_NOXI_PERSON.get(who, "")] + [inverse.get(who, "")]
    elif site.lower() == "recola":
        if who in _RECOLA_FIRST:
            alts = ["P1"]
        elif who in _RECOLA_SECOND:
            alts = ["P2"]
        elif who == "P1":
            alts = list(_RECOLA_FIRST)
        elif who == "P2":
            alts = list(_RECOLA_SECOND)
    for a in alts:
        if a:
            out.append("/".join([*parts[:-2], a, parts[-1]]))
    return out


def resolve(root: str | Path, split: str, modality: str, person: str, suffix: str) -> Path | None:
    """Find ``<root>/<split>/<modality>/<person><suffix>`` under any known spelling."""
    base = Path(root) / split / modality
    for variant in person_path_variants(person):
        p = base / (variant + suffix)
        if p.exists():
            return p
    return None


def expected_path(root: str | Path, split: str, modality: str, person: str, suffix: str) -> Path:
    return Path(root) / split / modality / (person + suffix)


# --------------------------------------------------------------------------- attribute CSVs
_FLOAT = re.compile(
    r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(nan|inf|infinity)\s*$",
    re.IGNORECASE)


def validate_emotion_csv(path: Path, frames: int = schema.CLIP_FRAMES,
                         check_ranges: bool = True) -> tuple[np.ndarray | None, list[Problem]]:
    """Parse an attribute CSV (header row + >= 750 rows x 25 columns) and list its problems.

    Returns the first ``frames`` rows as float32 (or None if unusable) and the problems found.
    Row numbers in messages are 1-based data rows (the header is row 0).
    """
    problems: list[Problem] = []
    if not path.is_file():
        return None, [Problem("missing-file", path, "attribute CSV not found")]
    fast = _fast_read(path, frames)
    if fast is not None:
        problems = _range_problems(path, fast) if check_ranges else []
        return fast.astype(np.float32), problems
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem("unreadable", path, f"cannot read: {exc}")]
    if len(rows) < 1:
        return None, [Problem("too-few-rows", path, "file is empty")]
    header, body = rows[0], [r for r in rows[1:] if r]
    n = schema.NUM_ATTRIBUTES
    if len(header) != n:
        problems.append(Problem("bad-columns", path, f"header has {len(header)} columns; "
                                f"expected {n} ({', '.join(schema.ATTRIBUTE_NAMES[:3])}, ...)",
                                row=0))
    if len(body) < frames:
        problems.append(Problem("too-few-rows", path,
                                f"{len(body)} data rows; expected at least {frames} "
                                f"({schema.FILE_FRAMES} in released files)"))
    values = np.full((min(len(body), frames), n), np.nan, dtype=np.float64)
    for r, row in enumerate(body[:frames], start=1):
        if len(row) != n:
            problems.append(Problem("bad-columns", path,
                                    f"{len(row)} columns; expected {n}", row=r))
            continue
        bad = [c for c in row if not _FLOAT.match(c)]
        if bad:
            problems.append(Problem("not-numeric", path,
                                    f"non-numeric value {bad[0]!r}; expected a number", row=r))
            continue
        values[r - 1] = [float(c) for c in row]
    if any(p.kind in ("bad-columns", "not-numeric") and p.row not in (0, None) for p in problems):
        return None, problems
    finite = np.isfinite(values)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        count = int((~finite).sum())
        problems.append(Problem("not-finite", path,
                                f"{schema.ATTRIBUTE_NAMES[c]} is {values[r, c]} "
                                f"({count} NaN/inf values in the file)", row=int(r) + 1))
    elif check_ranges:
        problems.extend(_range_problems(path, values))
    if problems:
        return (values.astype(np.float32) if values.shape[0] == frames and finite.all()
                else None), problems
    return values.astype(np.float32), problems


def _fast_read(path: Path, frames: int) -> np.ndarray | None:
    """The common case, a well-formed file, parsed in C; None sends it to the slow checks."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            header = fh.readline()
            if header.count(",") != schema.NUM_ATTRIBUTES - 1:
                return None
            values = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    if values.shape[1] != schema.NUM_ATTRIBUTES or values.shape[0] < frames:
        return None
    values = values[:frames]
    return values if np.isfinite(values).all() else None


def _range_problems(path: Path, values: np.ndarray) -> list[Problem]:
    out: list[Problem] = []
    tol = schema.RANGE_TOL
    low = values < schema.LOW - tol
    high = values > schema.HIGH + tol
    bad = low | high
    if bad.any():
        r, c = np.argwhere(bad)[0]
        out.append(Problem("out-of-range", path,
                           f"{schema.ATTRIBUTE_NAMES[c]} = {values[r, c]:.4g} outside "
                           f"[{schema.LOW[c]:g}, {schema.HIGH[c]:g}] ({int(bad.sum())} values "
                           "out of range in the file)", row=int(r) + 1))
    sums = values[:, schema.EXPRESSION_SLICE].sum(axis=1)
    off = np.abs(sums - 1.0) > schema.SIMPLEX_TOL
    if off.any():
        r = int(np.argmax(off))
        out.append(Problem("bad-simplex", path,
                           f"expression probabilities sum to {sums[r]:.4g}; expected 1 "
                           f"({int(off.sum())} rows)", row=r + 1))
    return out


def load_emotion_csv(path: Path, frames: int = schema.CLIP_FRAMES,
                     check_ranges: bool = True) -> np.ndarray:
    """Read an attribute CSV as ``(frames, 25)`` float32, raising DataError on any problem."""
    values, problems = validate_emotion_csv(path, frames, check_ranges)
    if problems:
        raise problems[0].error()
    assert values is not None
    return values


# --------------------------------------------------------------------------- appropriateness
def official_clip_key(person: str) -> tuple[str, str, str]:
    """The key the challenge's ``matrix_split.py`` uses to find a split row in data_indices.

    ``NoXI/010_2016-03-25_Paris/Expert_video/3`` -> ``("NOXI", "010_2016-03-25_Paris", "3")``;
    paths with more than 4 parts (UDIVA) join parts 2 and 1 as the tool does.
    """
    items = person.split("/")
    if len(items) > 4:
        return items[0].upper(), f"{items[2]}_{items[1]}", items[4]
    if len(items) != 4:
        raise ValueError(f"person path {person!r} does not have the form site/session/person/clip")
    return items[0].upper(), items[1], items[3]


def slice_all_matrix(root: str | Path, speakers: list[str]) -> np.ndarray:
    """Build a split's 2n x 2n matrix from ``Approprirate_facial_reaction.npy`` + data_indices.

    Same result as the challenge's ``tool/matrix_split.py``: split row r is matched to the
    data_indices row with the same (site, chat_index, clip_index); index i of the all-clips
    matrix is that row's first person as speaker and i + W/2 its second person.
    """
    root = Path(root)
    mpath, ipath = root / ALL_MATRIX_FILE, root / DATA_INDICES_FILE
    for p in (mpath, ipath):
        if not p.is_file():
            raise DataError("not found (needed to build the split's appropriateness matrix "
                            "when neighbour_emotion_<split>.npy is absent)", path=p,
                            kind="missing-file")
    all_matrix = _load_npy(mpath)
    if all_matrix.ndim != 2 or all_matrix.shape[0] != all_matrix.shape[1]:
        raise DataError(f"shape {all_matrix.shape}; expected a square matrix", path=mpath,
                        kind="bad-matrix")
    W = all_matrix.shape[0]
    with open(ipath, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    index: dict[tuple[str, str, str], int] = {}
    for r, row in enumerate(rows[1:], start=1):
        if len(row) < 3:
            raise DataError(f"expected 3 fields site,chat_index,clip_index; got {row!r}",
                            path=ipath, row=r, kind="bad-indices")
        index.setdefault((row[0].strip().upper(), row[1].strip(), row[2].strip()), r - 1)
    if 2 * (len(rows) - 1) != W:
        raise DataError(f"{len(rows) - 1} clip rows but the matrix is {W} x {W}; expected "
                        f"{2 * (len(rows) - 1)} (two persons per clip)", path=mpath,
                        kind="bad-matrix")
    idx = []
    for r, person in enumerate(speakers, start=1):
        key = official_clip_key(person)
        if key not in index:
            raise DataError(f"split row {r} ({person}) has no row {','.join(key)} in "
                            f"{DATA_INDICES_FILE}", path=ipath, kind="bad-indices")
        idx.append(index[key])
    a = np.asarray(idx)
    full = np.concatenate([a, a + W // 2])
    return np.asarray(all_matrix[np.ix_(full, full)])


def load_neighbours(root: str | Path, split: str, speakers: list[str]) -> np.ndarray:
    """The split's appropriateness matrix as bool (2n, 2n), validated against the split."""
    n2 = 2 * len(speakers)
    path = matrix_file(Path(root), split)
    if path.is_file():
        m = _load_npy(path)
    else:
        try:
            m = slice_all_matrix(root, speakers)
        except DataError as exc:
            if exc.kind == "missing-file":
                raise DataError(
                    f"not found, and no {ALL_MATRIX_FILE} + {DATA_INDICES_FILE} to build it "
                    f"from (build one with `regnn data neighbours {root} --split {split}`)",
                    path=path, kind="missing-file") from None
            raise
    problems = validate_matrix(m, n2, path)
    if problems:
        raise problems[0].error()
    return m > 0.5


def validate_matrix(m: np.ndarray, n2: int, path: Path) -> list[Problem]:
    if m.shape != (n2, n2):
        return [Problem("bad-matrix", path, f"shape {m.shape}; expected ({n2}, {n2}) = twice "
                        f"the split's {n2 // 2} rows (mirrored order)")]
    out: list[Problem] = []
    if not np.isfinite(m).all():
        out.append(Problem("bad-matrix", path, "contains NaN/inf"))
    elif not np.isin(m, (0, 1)).all():
        out.append(Problem("bad-matrix", path, "values other than 0 and 1"))
    elif not (np.diag(m) == 1).all():
        r = int(np.argmin(np.diag(m)))
        out.append(Problem("bad-matrix", path,
                           f"diagonal entry {r} is 0; a listener's own reaction is appropriate",
                           row=r))
    return out


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read as a NumPy array: {exc}", path=path,
                        kind="unreadable") from None
