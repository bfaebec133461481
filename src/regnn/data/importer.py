"""Build a REACT-layout dataset from a simple description CSV (``regnn data import``).

The description format, the OpenFace conversion and every default are documented in
``docs/import.md``. In short: one row per dyad clip with the columns ``site, session, clip,
speaker, listener, speaker_attributes, listener_attributes, speaker_audio, listener_audio``
and optionally ``split`` (train/val/test) and ``format`` (react/openface). Paths are relative
to the description's folder. Person paths become ``site/session/<speaker|listener>/clip``.

Everything is read and validated before anything is written: an error names the
description line (1-based, the header is line 1), the column and, for a bad attribute file,
its row. Outputs are written atomically; ``import.json`` (summary and warnings) is written
last and marks a complete import.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regnn import schema
from regnn.data import layout
from regnn.data.splits import DEFAULT_FRACTIONS, place_file, split_csv_text, split_rows
from regnn.errors import ConfigError, DataError
from regnn.utils.io import atomic_open, atomic_path, write_json, write_text

REQUIRED = ("site", "session", "clip", "speaker", "listener", "speaker_attributes",
            "listener_attributes", "speaker_audio", "listener_audio")
OPTIONAL = ("split", "format")
FORMATS = ("react", "openface")
AU_SOURCES = ("occurrence", "intensity")
MIN_AUDIO_SECONDS = schema.CLIP_FRAMES / schema.FPS - 0.5
OPENFACE_INTENSITY_MAX = 5.0
#: schema AU name -> OpenFace 2 column stem; OpenFace 2 does not estimate AU24
OPENFACE_AU = {name: f"AU{int(name[2:]):02d}" for name in schema.AU_NAMES}
OPENFACE_MISSING = ("AU24",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def neutral_defaults() -> np.ndarray:
    """Per-attribute fill value for attributes a source does not provide: AU 0,
    valence/arousal 0, expressions one-hot Neutral."""
    v = np.zeros(schema.NUM_ATTRIBUTES, dtype=np.float32)
    v[schema.index_of("Neutral")] = 1.0
    return v


@dataclass
class Conversion:
    """How one attribute file was turned into (751, 25) values."""

    values: np.ndarray  # (751, 25) float32
    filled: list[str] = field(default_factory=list)  # attributes filled with defaults
    clipped: int = 0  # values clipped into range
    failed_frames: int = 0  # OpenFace frames without a face, interpolated
    source_fps: float | None = None


@dataclass
class Row:
    line: int
    site: str
    session: str
    clip: str
    persons: tuple[str, str]  # speaker, listener ids
    attributes: tuple[Path, Path]
    audio: tuple[Path, Path]
    split: str | None
    fmt: str

    def person_path(self, k: int) -> str:
        return f"{self.site}/{self.session}/{self.persons[k]}/{self.clip}"


# --------------------------------------------------------------------------- description
def read_description(path: str | Path, default_format: str = "react") -> list[Row]:
    """Parse and check the description CSV (files must exist); errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("description CSV not found", path=path, kind="missing-file")
    base = path.parent
    with open(path, newline="", encoding="utf-8-sig") as fh:
        lines = list(csv.reader(fh))
    if not lines:
        raise DataError("description is empty", path=path, kind="bad-description")
    header = [h.strip().lower() for h in lines[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(f"line 1: header lacks column(s) {', '.join(missing)}; expected "
                        f"{', '.join(REQUIRED)} (+ optional {', '.join(OPTIONAL)})",
                        path=path, kind="bad-description")
    unknown = [h for h in header if h and h not in REQUIRED + OPTIONAL]
    if unknown:
        raise DataError(f"line 1: unknown column(s) {', '.join(unknown)}", path=path,
                        kind="bad-description")
    col = {name: header.index(name) for name in header if name}
    rows: list[Row] = []
    for n, fields in enumerate(lines[1:], start=2):
        if not fields or all(not f.strip() for f in fields):
            continue

        def err(message: str, n: int = n) -> DataError:
            return DataError(f"line {n}: {message}", path=path, kind="bad-description")

        if len(fields) != len(header):
            raise err(f"{len(fields)} fields; the header has {len(header)}")
        get = {name: fields[i].strip() for name, i in col.items()}
        for name in REQUIRED:
            if not get[name]:
                raise err(f"column {name} is empty")
        for name in ("site", "session", "clip", "speaker", "listener"):
            if not _NAME.match(get[name]):
                raise err(f"column {name} = {get[name]!r}: use letters, digits, '_', '-', "
                          "'.' only (it becomes a folder name)")
        if get["speaker"] == get["listener"]:
            raise err(f"speaker and listener are both {get['speaker']!r}; a dyad has two "
                      "different persons")
        split = get.get("split") or None
        if split is not None and split not in layout.SPLITS:
            raise err(f"column split = {split!r}; expected one of {', '.join(layout.SPLITS)}")
        fmt = (get.get("format") or default_format).lower()
        if fmt not in FORMATS:
            raise err(f"column format = {fmt!r}; expected one of {', '.join(FORMATS)}")
        files: dict[str, Path] = {}
        for name in REQUIRED[5:]:
            p = Path(get[name])
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                raise err(f"column {name}: file not found: {p}")
            files[name] = p
        rows.append(Row(n, get["site"], get["session"], get["clip"],
                        (get["speaker"], get["listener"]),
                        (files["speaker_attributes"], files["listener_attributes"]),
                        (files["speaker_audio"], files["listener_audio"]), split, fmt))
    if not rows:
        raise DataError("description has no data rows", path=path, kind="bad-description")
    seen: dict[tuple[str, str, str], int] = {}
    for r in rows:
        key = (r.site, r.session, r.clip)
        if key in seen:
            raise DataError(f"line {r.line}: clip {'/'.join(key)} already described on line "
                            f"{seen[key]}", path=path, kind="bad-description")
        seen[key] = r.line
    with_split = sum(r.split is not None for r in rows)
    if 0 < with_split < len(rows):
        first = next(r for r in rows if r.split is None)
        raise DataError(f"line {first.line}: column split is empty; give a split on every "
                        "line or on none (then sessions are split with --seed)", path=path,
                        kind="bad-description")
    return rows


# --------------------------------------------------------------------------- conversion
def read_table(path: Path):  # -> pandas.DataFrame
    import pandas as pd

    try:
        df = pd.read_csv(path, skipinitialspace=True)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read as CSV: {exc}", path=path, kind="unreadable") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _numeric(df, columns: Sequence[str], path: Path) -> np.ndarray:
    import pandas as pd

    block = df[list(columns)].apply(pd.to_numeric, errors="coerce")
    bad = block.isna().to_numpy() & df[list(columns)].notna().to_numpy()
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"column {columns[c]!r}: non-numeric value "
                        f"{df[columns[c]].iloc[r]!r}", path=path, row=int(r) + 1,
                        kind="not-numeric")
    return np.array(block.to_numpy(dtype=np.float64), copy=True)


def _by_name(columns: Sequence[str]) -> dict[str, str]:
    """Case-insensitive lookup of schema names among a file's columns."""
    lower = {c.lower(): c for c in columns}
    return {name: lower[name.lower()] for name in schema.ATTRIBUTE_NAMES if name.lower() in lower}


def convert_table(df, path: Path, fmt: str = "react", mapping: dict[str, str] | None = None,
                  au_source: str = "occurrence", fps: float | None = None) -> Conversion:
    """Turn one attribute table into (751, 25) float32 schema values (see docs/import.md)."""
    n_rows = len(df)
    if n_rows == 0:
        raise DataError("no data rows", path=path, kind="too-few-rows")
    values = np.tile(neutral_defaults().astype(np.float64), (n_rows, 1))
    given = np.zeros(schema.NUM_ATTRIBUTES, dtype=bool)
    columns = list(df.columns)
    conv = Conversion(values=np.empty(0, np.float32))
    source: dict[str, str] = {}
    if mapping:
        absent = [c for c in mapping.values() if c not in columns]
        if absent:
            raise DataError(f"mapped column(s) {', '.join(map(repr, absent))} not in the header",
                            path=path, row=0, kind="bad-columns")
        source = dict(mapping)
    elif fmt == "openface":
        suffix = "_c" if au_source == "occurrence" else "_r"
        for name, stem in OPENFACE_AU.items():
            if stem + suffix in columns:
                source[name] = stem + suffix
            elif name not in OPENFACE_MISSING:
                raise DataError(f"OpenFace column {stem + suffix!r} not found (is this an "
                                "OpenFace 2 FeatureExtraction CSV with AUs?)", path=path,
                                row=0, kind="bad-columns")
        # valence/arousal/expressions are not OpenFace outputs; use them if the user added them
        for name, c in _by_name(columns).items():
            if not name.startswith("AU"):
                source[name] = c
    else:
        named = _by_name(columns)
        if len(named) == schema.NUM_ATTRIBUTES:
            source = named
        elif len(columns) == schema.NUM_ATTRIBUTES:
            source = dict(zip(schema.ATTRIBUTE_NAMES, columns))
        else:
            first = ", ".join(schema.ATTRIBUTE_NAMES[:3])
            raise DataError(f"{len(columns)} columns, of which {len(named)} are attribute "
                            f"names; expected the 25 attributes ({first}, ...) by name or in "
                            "order, or a --mapping", path=path, row=0, kind="bad-columns")
    unknown = [k for k in source if k not in schema.ATTRIBUTE_NAMES]
    if unknown:
        raise ConfigError(f"mapping names unknown attribute(s) {', '.join(unknown)}; "
                          f"attributes are {', '.join(schema.ATTRIBUTE_NAMES)}")
    names = [n for n in schema.ATTRIBUTE_NAMES if n in source]
    idx = [schema.index_of(n) for n in names]
    raw = _numeric(df, [source[n] for n in names], path)
    if fmt == "openface" and not mapping and au_source == "intensity":
        au_cols = [k for k, n in enumerate(names) if n.startswith("AU")]
        raw[:, au_cols] = raw[:, au_cols] / OPENFACE_INTENSITY_MAX
    values[:, idx] = raw
    given[idx] = True
    # OpenFace frames without a tracked face: interpolate over time
    failed = np.zeros(n_rows, dtype=bool)
    if fmt == "openface" and "success" in columns:
        failed = _numeric(df, ["success"], path)[:, 0] < 0.5
        if failed.all():
            raise DataError("no frame with success = 1 (no face tracked)", path=path,
                            kind="not-finite")
    values[failed] = np.nan
    missing = np.isnan(values) & ~failed[:, None]
    if missing.any():
        r, c = np.argwhere(missing)[0]
        name = schema.ATTRIBUTE_NAMES[c]
        raise DataError(f"{name} (column {source[name]!r}) is empty/NaN "
                        f"({int(missing.sum())} values)", path=path, row=int(r) + 1,
                        kind="not-finite")
    if failed.any():
        values = _interpolate_rows(values, failed)
    conv.failed_frames = int(failed.sum())
    # frame rate: a timestamp column (OpenFace) or the caller's fps
    src_fps = fps
    if src_fps is None and "timestamp" in columns:
        t = _numeric(df, ["timestamp"], path)[:, 0]
        steps = np.diff(t)
        if len(steps) and np.all(steps > 0):
            src_fps = float(1.0 / np.median(steps))
    if src_fps is not None and abs(src_fps - schema.FPS) > 0.5:
        values = _resample(values, src_fps)
        conv.source_fps = src_fps
    if len(values) < schema.CLIP_FRAMES:
        rate = f" after resampling from {src_fps:.2f} fps" if conv.source_fps else ""
        raise DataError(f"{len(values)} frames at {schema.FPS} fps{rate} "
                        f"({len(values) / schema.FPS:.1f} s); a clip needs at least "
                        f"{schema.CLIP_FRAMES} frames (30 s)", path=path, kind="too-few-rows")
    values = values[: schema.FILE_FRAMES]
    if len(values) < schema.FILE_FRAMES:
        values = np.concatenate([values, values[-1:]], axis=0)
    tol = schema.RANGE_TOL
    outside = (values < schema.LOW - tol) | (values > schema.HIGH + tol)
    sums = values[:, schema.EXPRESSION_SLICE].sum(axis=1)
    conv.clipped = int(outside.sum()) + int((np.abs(sums - 1) > schema.SIMPLEX_TOL).sum())
    conv.values = schema.clip_to_ranges(values).astype(np.float32)
    conv.filled = [n for n, g in zip(schema.ATTRIBUTE_NAMES, given) if not g]
    return conv


def _interpolate_rows(values: np.ndarray, bad: np.ndarray) -> np.ndarray:
    good = np.flatnonzero(~bad)
    t = np.arange(len(values))
    out = values.copy()
    for c in range(values.shape[1]):
        out[bad, c] = np.interp(t[bad], good, values[good, c])
    return out


def _resample(values: np.ndarray, src_fps: float) -> np.ndarray:
    """Linear interpolation from ``src_fps`` to 25 fps (first frame kept at time 0)."""
    duration = (len(values) - 1) / src_fps
    n = int(np.floor(duration * schema.FPS + 1e-9)) + 1
    t_new = np.arange(n) / schema.FPS
    t_old = np.arange(len(values)) / src_fps
    return np.stack([np.interp(t_new, t_old, values[:, c]) for c in range(values.shape[1])],
                    axis=1)


def check_audio(path: Path) -> tuple[float, str]:
    """(duration in seconds, soundfile format) of an audio file; DataError if unreadable."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise DataError(f"cannot read audio: {exc}", path=path, kind="unreadable") from None
    return float(info.duration), str(info.format)


def load_mapping(path: str | Path | None) -> dict[str, str] | None:
    """Read a column mapping ``{"AU1": "my_au1", ...}`` (JSON or YAML)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"mapping file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is a config error
        raise ConfigError(f"cannot parse mapping {p}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in data.items()):
        raise ConfigError(f"mapping {p} must be an object of attribute name -> column name")
    unknown = [k for k in data if k not in schema.ATTRIBUTE_NAMES]
    if unknown:
        raise ConfigError(f"mapping {p} names unknown attribute(s) {', '.join(unknown)}; "
                          f"attributes are {', '.join(schema.ATTRIBUTE_NAMES)}")
    return data


# --------------------------------------------------------------------------- import
def import_dataset(description: str | Path, out: str | Path, fmt: str = "react",
                   mapping: dict[str, str] | None = None, au_source: str = "occurrence",
                   fps: float | None = None, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                   seed: int = 0, force: bool = False, progress: bool = False) -> dict:
    """Validate every line of ``description``, then write the REACT layout under ``out``.

    Returns a summary with the split sizes and the warnings (defaults filled, values
    clipped, frames interpolated or resampled). Appropriateness matrices are not built here
    (``regnn data import`` builds them after this returns).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if au_source not in AU_SOURCES:
        raise ConfigError(f"unknown AU source {au_source!r}; expected {' or '.join(AU_SOURCES)}")
    description = Path(description)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} is not empty; pass --force to write into it")
    rows = read_description(description, fmt)
    # pass 1: read and convert everything, so that a bad line leaves nothing half-written
    converted: dict[str, Conversion] = {}
    audio_info: dict[str, tuple[Path, str]] = {}
    origin: dict[str, tuple[int, Path]] = {}
    iterator = rows
    if progress:
        from tqdm import tqdm

        iterator = tqdm(rows, desc="import: read", unit="clip", leave=False)
    for row in iterator:
        for k, role in enumerate(("speaker", "listener")):
            person = row.person_path(k)
            if person in origin:
                raise DataError(f"line {row.line}: person {person} already described on "
                                f"line {origin[person][0]}", path=description,
                                kind="bad-description")
            origin[person] = (row.line, row.attributes[k])
            try:
                df = read_table(row.attributes[k])
                converted[person] = convert_table(df, row.attributes[k], row.fmt, mapping,
                                                  au_source, fps)
                duration, afmt = check_audio(row.audio[k])
            except DataError as exc:
                raise DataError(f"line {row.line} ({role}): {exc}", path=description,
                                kind=exc.kind) from None
            if duration < MIN_AUDIO_SECONDS:
                raise DataError(f"line {row.line} ({role}_audio): {row.audio[k]} lasts "
                                f"{duration:.2f} s; a clip needs about "
                                f"{schema.CLIP_FRAMES / schema.FPS:.0f} s", path=description,
                                kind="too-short")
            audio_info[person] = (row.audio[k], afmt)
    speakers = [r.person_path(0) for r in rows]
    listeners = [r.person_path(1) for r in rows]
    if rows[0].split is not None:
        by_split = {s: [i for i, r in enumerate(rows) if r.split == s] for s in layout.SPLITS}
        sessions: dict[str, set[str]] = {}
        for r in rows:
            sessions.setdefault(f"{r.site}/{r.session}", set()).add(str(r.split))
        mixed = sorted(s for s, v in sessions.items() if len(v) > 1)
        warnings_split = ([f"session(s) {', '.join(mixed)} appear in more than one split "
                           "(the split column was followed as given)"] if mixed else [])
    else:
        by_split = split_rows(speakers, listeners, fractions, seed, source=description)
        warnings_split = []
    empty = [s for s, idx in by_split.items() if not idx]
    if empty:
        raise DataError(f"split(s) {', '.join(empty)} would be empty; every split needs at "
                        "least one clip", path=description, kind="bad-description")
    # pass 2: write
    header = ",".join(schema.ATTRIBUTE_NAMES)
    out.mkdir(parents=True, exist_ok=True)
    writes = [(split, i) for split, idx in by_split.items() for i in idx]
    iterator2 = writes
    if progress:
        from tqdm import tqdm

        iterator2 = tqdm(writes, desc="import: write", unit="clip", leave=False)
    for split, i in iterator2:
        for person in (speakers[i], listeners[i]):
            csv_path = out / split / layout.EMOTION_DIR / f"{person}.csv"
            with atomic_open(csv_path, "w", encoding="utf-8") as fh:
                np.savetxt(fh, converted[person].values, fmt="%.6f", delimiter=",",
                           header=header, comments="")
            src, afmt = audio_info[person]
            wav = out / split / layout.AUDIO_DIR / f"{person}.wav"
            if afmt == "WAV":
                place_file(src, wav, "copy")
            else:
                _convert_audio(src, wav)
    for split, idx in by_split.items():
        write_text(out / f"{split}.csv", split_csv_text([speakers[i] for i in idx],
                                                         [listeners[i] for i in idx]))
    warnings = warnings_split + _warnings(converted, origin)
    summary = {
        "description": str(description), "root": str(out), "format": fmt,
        "au_source": au_source, "mapping": mapping, "seed": seed,
        "split_from": "description" if rows[0].split is not None else "sessions (seeded)",
        "splits": {s: {"rows": len(idx), "items": 2 * len(idx)} for s, idx in by_split.items()},
        "persons": len(converted), "warnings": warnings,
    }
    return summary


def finish(out: str | Path, summary: dict) -> None:
    """Write ``import.json``, the marker of a complete import."""
    write_json(Path(out) / "import.json", summary)


def _convert_audio(src: Path, dst: Path) -> None:
    import soundfile as sf

    data, rate = sf.read(str(src), dtype="float32", always_2d=True)
    with atomic_path(dst) as tmp:
        sf.write(str(tmp), data, rate, subtype="PCM_16", format="WAV")


def _warnings(converted: dict[str, Conversion], origin: dict[str, tuple[int, Path]]
              ) -> list[str]:
    out: list[str] = []
    filled = Counter(tuple(c.filled) for c in converted.values() if c.filled)
    for names, count in filled.items():
        example = next(p for p, c in converted.items() if tuple(c.filled) == names)
        out.append(f"{count} person file(s) lack {', '.join(names)}: filled with neutral "
                   f"defaults (AU 0, valence/arousal 0, expression Neutral = 1), e.g. "
                   f"line {origin[example][0]} ({origin[example][1].name})")
    clipped = {p: c.clipped for p, c in converted.items() if c.clipped}
    if clipped:
        worst = max(clipped, key=clipped.__getitem__)
        out.append(f"{len(clipped)} person file(s) had values outside the attribute ranges "
                   f"(clipped; expressions renormalised): most in line {origin[worst][0]} "
                   f"({clipped[worst]} values)")
    failed = {p: c.failed_frames for p, c in converted.items() if c.failed_frames}
    if failed:
        worst = max(failed, key=failed.__getitem__)
        out.append(f"{len(failed)} person file(s) had frames without a tracked face "
                   f"(success = 0), interpolated: most in line {origin[worst][0]} "
                   f"({failed[worst]} frames)")
    rates = sorted({round(c.source_fps, 2) for c in converted.values() if c.source_fps})
    if rates:
        out.append(f"attributes resampled to {schema.FPS} fps from "
                   f"{', '.join(map(str, rates))} fps")
    return out
