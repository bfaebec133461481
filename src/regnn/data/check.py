"""Validate a REACT-layout dataset and list every problem (``regnn data check``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from regnn import schema
from regnn.data import layout
from regnn.data.layout import Problem
from regnn.errors import DataError

MIN_AUDIO_SECONDS = schema.CLIP_FRAMES / schema.FPS - 0.5


def check_dataset(root: str | Path, splits: tuple[str, ...] = layout.SPLITS,
                  audio: bool = True, video: bool = True, progress: bool = False
                  ) -> tuple[list[Problem], dict]:
    """Return (problems, summary). Missing optional modalities (video, 3DMM) are not problems;
    a video or 3DMM folder that exists but lacks a person's file is."""
    root = Path(root)
    problems: list[Problem] = []
    summary: dict = {"root": str(root), "splits": {}}
    if not root.is_dir():
        return [Problem("missing-file", root, "dataset folder not found")], summary
    for split in splits:
        try:
            speakers, listeners = layout.read_split_csv(root, split)
        except DataError as exc:
            problems.append(Problem(exc.kind, exc.path or root, exc.detail, exc.row))
            continue
        persons = list(dict.fromkeys(speakers + listeners))
        split_problems = list(_check_persons(root, split, persons, audio, video, progress))
        split_problems += _unlisted_files(root, split, persons)
        problems += split_problems
        problems += _check_matrix(root, split, speakers)
        summary["splits"][split] = {"rows": len(speakers), "items": 2 * len(speakers),
                                    "persons": len(persons), "problems": len(split_problems)}
    problems += _check_all_matrix(root)
    summary["problems"] = len(problems)
    return problems, summary


def _check_persons(root: Path, split: str, persons: list[str], audio: bool, video: bool,
                   progress: bool) -> Iterator[Problem]:
    video_dir = root / split / layout.VIDEO_DIR
    dmm_dir = root / split / layout.THREEDMM_DIR
    iterator = persons
    if progress:
        from tqdm import tqdm

        iterator = tqdm(persons, desc=f"check {split}", unit="person", leave=False)
    for person in iterator:
        csv_path = layout.resolve(root, split, layout.EMOTION_DIR, person, ".csv")
        if csv_path is None:
            yield Problem("missing-file", layout.expected_path(
                root, split, layout.EMOTION_DIR, person, ".csv"), "attribute CSV not found")
        else:
            _, found = layout.validate_emotion_csv(csv_path)
            yield from found
        if audio:
            yield from _check_audio(root, split, person)
        if video and video_dir.is_dir():
            folder = layout.resolve(root, split, layout.VIDEO_DIR, person, "")
            mp4 = layout.resolve(root, split, layout.VIDEO_DIR, person, ".mp4")
            if folder is not None and folder.is_dir():
                count = sum(1 for _ in folder.glob("*.png"))
                if count < schema.CLIP_FRAMES:
                    yield Problem("too-few-frames", folder,
                                  f"{count} PNG frames; expected at least {schema.CLIP_FRAMES}")
            elif mp4 is None:
                yield Problem("missing-file", layout.expected_path(
                    root, split, layout.VIDEO_DIR, person, ".mp4"),
                    "video not found (neither a PNG frame folder nor .mp4)")
        if dmm_dir.is_dir():
            npy = layout.resolve(root, split, layout.THREEDMM_DIR, person, ".npy")
            if npy is None:
                yield Problem("missing-file", layout.expected_path(
                    root, split, layout.THREEDMM_DIR, person, ".npy"), "3DMM .npy not found")
            else:
                yield from _check_3dmm(npy)


def _unlisted_files(root: Path, split: str, persons: list[str]) -> list[Problem]:
    """Attribute CSVs and WAVs under ``<split>/`` that no row of ``<split>.csv`` lists: left
    over from an earlier or interrupted import, or a split CSV missing rows."""
    problems = []
    for modality, suffix in ((layout.EMOTION_DIR, ".csv"), (layout.AUDIO_DIR, ".wav")):
        base = root / split / modality
        if not base.is_dir():
            continue
        listed = {p.resolve() for person in persons
                  if (p := layout.resolve(root, split, modality, person, suffix)) is not None}
        for path in sorted(base.rglob(f"*{suffix}")):
            if path.name.startswith("."):
                continue
            if path.resolve() not in listed:
                problems.append(Problem("unlisted-file", path,
                                        f"not listed in {split}.csv (left over from another "
                                        "import, or a row is missing from the split CSV)"))
    return problems


def _check_audio(root: Path, split: str, person: str) -> Iterator[Problem]:
    import soundfile as sf

    wav = layout.resolve(root, split, layout.AUDIO_DIR, person, ".wav")
    if wav is None:
        yield Problem("missing-file", layout.expected_path(root, split, layout.AUDIO_DIR,
                                                           person, ".wav"), "audio WAV not found")
        return
    try:
        info = sf.info(str(wav))
    except (RuntimeError, sf.LibsndfileError) as exc:
        yield Problem("unreadable", wav, f"cannot read audio: {exc}")
        return
    if info.duration < MIN_AUDIO_SECONDS:
        yield Problem("too-short", wav, f"{info.duration:.2f} s of audio; expected about "
                      f"{schema.CLIP_FRAMES / schema.FPS:.0f} s")


def _check_3dmm(path: Path) -> Iterator[Problem]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        yield Problem("unreadable", path, f"cannot read as a NumPy array: {exc}")
        return
    if arr.ndim < 2 or arr.shape[0] < schema.CLIP_FRAMES:
        yield Problem("too-few-rows", path, f"shape {arr.shape}; expected ({schema.FILE_FRAMES},"
                      " 58)")
    elif not np.isfinite(arr).all():
        yield Problem("not-finite", path, "contains NaN/inf")


def _check_matrix(root: Path, split: str, speakers: list[str]) -> list[Problem]:
    path = layout.matrix_file(root, split)
    n2 = 2 * len(speakers)
    if not path.is_file():
        if (root / layout.ALL_MATRIX_FILE).is_file() and (root / layout.DATA_INDICES_FILE
                                                           ).is_file():
            try:
                m = layout.slice_all_matrix(root, speakers)
            except DataError as exc:
                return [Problem(exc.kind, exc.path or path, exc.detail, exc.row)]
            return layout.validate_matrix(m, n2, root / layout.ALL_MATRIX_FILE)
        return [Problem("missing-file", path, "appropriateness matrix not found (and no "
                        f"{layout.ALL_MATRIX_FILE} + {layout.DATA_INDICES_FILE} to build it)")]
    try:
        m = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return [Problem("unreadable", path, f"cannot read as a NumPy array: {exc}")]
    return layout.validate_matrix(m, n2, path)


def _check_all_matrix(root: Path) -> list[Problem]:
    mpath, ipath = root / layout.ALL_MATRIX_FILE, root / layout.DATA_INDICES_FILE
    if not mpath.is_file():
        return []
    try:
        m = np.load(mpath, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return [Problem("unreadable", mpath, f"cannot read as a NumPy array: {exc}")]
    if not ipath.is_file():
        return [Problem("missing-file", ipath, f"needed beside {layout.ALL_MATRIX_FILE}")]
    rows = sum(1 for line in ipath.read_text(encoding="utf-8-sig").splitlines()[1:] if line)
    if m.shape != (2 * rows, 2 * rows):
        return [Problem("bad-matrix", mpath, f"shape {m.shape}; expected ({2 * rows}, "
                        f"{2 * rows}) for the {rows} clips of {layout.DATA_INDICES_FILE}")]
    return []
