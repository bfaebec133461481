"""Bring your own data: regnn data import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import replace_file
from regnn import schema
from regnn.cli import main
from regnn.data import layout
from regnn.data.importer import convert_table, neutral_defaults
from regnn.data.react import ReactSplit
from regnn.errors import DataError

HEADER = ("site,session,clip,speaker,listener,speaker_attributes,listener_attributes,"
          "speaker_audio,listener_audio")


def _react_description(src: Path, dst: Path, with_split: bool = True) -> list[dict]:
    """Copy the fixture's files into a flat 'user' folder and describe them."""
    files = dst / "files"
    files.mkdir(parents=True)
    lines, rows = [HEADER + (",split" if with_split else "")], []
    for split in layout.SPLITS:
        spk, lis = layout.read_split_csv(src, split)
        for s, li in zip(spk, lis):
            site, session, _, clip = s.split("/")
            names = []
            for person in (s, li):
                stem = person.replace("/", "_")
                shutil.copy(src / split / layout.EMOTION_DIR / f"{person}.csv",
                            files / f"{stem}.csv")
                shutil.copy(src / split / layout.AUDIO_DIR / f"{person}.wav",
                            files / f"{stem}.wav")
                names.append(stem)
            who = (s.split("/")[2], li.split("/")[2])
            lines.append(f"{site},{session},{clip},{who[0]},{who[1]},files/{names[0]}.csv,"
                         f"files/{names[1]}.csv,files/{names[0]}.wav,files/{names[1]}.wav"
                         + (f",{split}" if with_split else ""))
            rows.append({"split": split, "speaker": s, "listener": li})
    (dst / "clips.csv").write_text("\n".join(lines) + "\n")
    return rows


def _openface_table(rng: np.random.Generator, seconds: float = 31.0, fps: float = 30.0,
                    failed: tuple[int, ...] = ()) -> pd.DataFrame:
    n = int(seconds * fps)
    cols = {"frame": np.arange(1, n + 1), "face_id": 0, "timestamp": np.arange(n) / fps,
            "confidence": 0.98, "success": 1}
    stems = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14",
             "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45"]
    for st in stems:
        cols[f"{st}_r"] = np.round(rng.uniform(0, 5, n), 2)
    for st in stems + ["AU28"]:
        cols[f"{st}_c"] = rng.integers(0, 2, n).astype(float)
    df = pd.DataFrame(cols)
    df.loc[list(failed), "success"] = 0
    return df


# --------------------------------------------------------------------------- conversion
def test_openface_conversion_resamples_fills_and_interpolates():
    rng = np.random.default_rng(0)
    df = _openface_table(rng, failed=(10, 11))
    df.columns = [" " + c for c in df.columns]  # OpenFace writes ", AU01_r" headers
    df.columns = [c.strip() for c in df.columns]
    conv = convert_table(df, Path("of.csv"), "openface")
    v = conv.values
    assert v.shape == (751, 25) and v.dtype == np.float32
    assert conv.source_fps == pytest.approx(30.0)
    assert conv.failed_frames == 2
    assert conv.filled == ["AU24", "valence", "arousal", "Neutral", "Happy", "Sad", "Surprise",
                           "Fear", "Disgust", "Anger", "Contempt"]
    # frame 0 at t=0 is copied; frame 5 at t=0.2 s is source frame 6 (30 fps) exactly
    au12 = schema.index_of("AU12")
    assert v[0, au12] == df["AU12_c"][0]
    assert v[5, au12] == pytest.approx(df["AU12_c"][6])
    assert (v[:, schema.index_of("AU24")] == 0).all()
    np.testing.assert_array_equal(v[:, 15:], np.tile(neutral_defaults()[15:], (751, 1)))
    inten = convert_table(df, Path("of.csv"), "openface", au_source="intensity").values
    assert inten[0, au12] == pytest.approx(df["AU12_r"][0] / 5, abs=1e-6)


def test_openface_user_columns_for_affect_are_used():
    rng = np.random.default_rng(1)
    df = _openface_table(rng, fps=25.0)
    df["valence"] = 0.5
    df["Happy"], df["Neutral"] = 0.25, 0.75
    conv = convert_table(df, Path("of.csv"), "openface")
    assert conv.source_fps is None  # already 25 fps
    assert (conv.values[:, schema.index_of("valence")] == 0.5).all()
    assert conv.values[0, schema.index_of("Happy")] == pytest.approx(0.25)
    assert "valence" not in conv.filled and "arousal" in conv.filled


def test_conversion_errors_name_column_and_row():
    rng = np.random.default_rng(2)
    df = _openface_table(rng, seconds=20)
    with pytest.raises(DataError, match=r"500 frames.*at least 750"):
        convert_table(df, Path("short.csv"), "openface")
    df = _openface_table(rng).drop(columns=["AU12_c"])
    with pytest.raises(DataError, match="'AU12_c' not found"):
        convert_table(df, Path("x.csv"), "openface")
    good = pd.DataFrame(np.full((751, 25), 0.1), columns=schema.ATTRIBUTE_NAMES)
    bad = good.astype(object)
    bad.iloc[40, 3] = "oops"
    with pytest.raises(DataError, match=r"row 41: column 'AU6': non-numeric value 'oops'"):
        convert_table(bad, Path("r.csv"))
    with pytest.raises(DataError, match="24 columns"):
        convert_table(good.iloc[:, :24], Path("r.csv"))


def test_mapping_and_positional_columns_and_clipping():
    rng = np.random.default_rng(3)
    vals = rng.uniform(0, 1, (751, 25))
    vals[:, 15:17] = 0
    vals[:, 17:] /= vals[:, 17:].sum(1, keepdims=True)
    vals[3, 0] = 1.7  # out of range: clipped and counted
    positional = pd.DataFrame(vals, columns=[f"c{k}" for k in range(25)])
    conv = convert_table(positional, Path("p.csv"))
    assert conv.clipped == 1 and conv.values[3, 0] == 1.0
    np.testing.assert_allclose(conv.values[4], vals[4], atol=1e-6)
    mapped = convert_table(positional, Path("p.csv"), mapping={"AU12": "c7", "valence": "c15"})
    np.testing.assert_allclose(mapped.values[:, 7], vals[:, 7], atol=1e-6)
    assert (mapped.values[:, 0] == 0).all() and "AU1" in mapped.filled


# --------------------------------------------------------------------------- the command
def test_import_react_files_passes_check_and_loads(synthetic_root: Path, tmp_path: Path,
                                                   tiny_config: Path, capsys):
    rows = _react_description(synthetic_root, tmp_path / "user")
    out = tmp_path / "imported"
    assert main(["data", "import", str(tmp_path / "user" / "clips.csv"), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "splits from description" in printed and "neighbour_emotion_train.npy" in printed
    assert main(["data", "check", str(out)]) == 0
    summary = json.loads((out / "import.json").read_text())
    assert summary["persons"] == 2 * len(rows) and summary["warnings"] == []
    src = ReactSplit(synthetic_root, "test")
    ds = ReactSplit(out, "test")
    assert len(ds) == len(src) and ds.items[0].speaker_path == src.items[0].speaker_path
    batch = [ds[i] for i in range(len(ds))]  # loads every modality
    np.testing.assert_allclose(ds.speakers(), src.speakers(), atol=1e-5)  # renormalised
    np.testing.assert_allclose(batch[0]["speaker_audio"], src.audio(0), atol=1e-5)
    assert ds.neighbours.shape == (len(ds), len(ds)) and ds.neighbours.diagonal().all()

    # the imported dataset trains and generates (one tiny epoch)
    cfg = tiny_config
    run = tmp_path / "run"
    assert main(["train", "--data", str(out), "--out", str(run), "--config", str(cfg),
                 "--no-progress"]) == 0
    assert main(["generate", "--run", str(run), "--data", str(out), "--split", "test",
                 "--out", str(tmp_path / "pred"), "--samples", "2", "--no-progress"]) == 0
    pred = np.load(tmp_path / "pred" / "test" / f"{ds.items[0].speaker_path}.npy")
    assert pred.shape == (2, 750, 25) and np.isfinite(pred).all()

    # a second import into the same folder is refused without --force
    assert main(["data", "import", str(tmp_path / "user" / "clips.csv"), "--out",
                 str(out)]) == 2
    assert "not empty; pass --force" in capsys.readouterr().err
    assert main(["data", "import", str(tmp_path / "user" / "clips.csv"), "--out", str(out),
                 "--force", "--no-neighbours"]) == 0


def test_import_openface_without_split_column(tmp_path: Path, capsys):
    import soundfile as sf

    rng = np.random.default_rng(4)
    user = tmp_path / "lab"
    user.mkdir()
    lines = [HEADER]
    tone = (0.1 * np.sin(np.arange(16000 * 31) / 16000 * 2 * np.pi * 220)).astype(np.float32)
    for s in range(4):
        for clip in (1, 2):
            names = []
            for who in ("A", "B"):
                stem = f"s{s}_{who}_{clip}"
                _openface_table(rng, failed=(5,)).to_csv(user / f"{stem}.csv", index=False)
                sf.write(str(user / f"{stem}.wav"), tone, 16000)
                names.append(stem)
            lines.append(f"MyLab,session{s},{clip},A,B,{names[0]}.csv,{names[1]}.csv,"
                         f"{names[0]}.wav,{names[1]}.wav")
    (user / "clips.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "ds"
    assert main(["data", "import", str(user / "clips.csv"), "--out", str(out), "--format",
                 "openface", "--seed", "1", "--fractions", "0.5", "0.25", "0.25"]) == 0
    err = capsys.readouterr().err
    assert "lack AU24, valence" in err and "resampled to 25 fps from 30.0 fps" in err
    assert "frames without a tracked face" in err
    assert main(["data", "check", str(out)]) == 0
    sessions = {}
    for split in layout.SPLITS:
        ds = ReactSplit(out, split)
        # 2 sessions of 2 clips in train, 1 in val and in test; 2 mirrored items per clip
        assert len(ds) == {"train": 8, "val": 4, "test": 4}[split]
        for it in ds.items:
            assert sessions.setdefault(it.speaker_path.split("/")[1], split) == split
        x = ds.speakers()
        assert x.shape == (len(ds), 750, 25)
        # occurrences resampled 30 -> 25 fps by linear interpolation stay in [0, 1]
        assert x[:, :, :15].min() >= 0 and x[:, :, :15].max() <= 1
        assert (x[:, :, schema.index_of("Neutral")] == 1).all()
    assert len(sessions) == 4


def _description_with(tmp_path: Path, synthetic_root: Path, line: int, column: int,
                      value: str) -> Path:
    _react_description(synthetic_root, tmp_path / "user")
    desc = tmp_path / "user" / "clips.csv"
    lines = desc.read_text().splitlines()
    fields = lines[line - 1].split(",")
    fields[column] = value
    lines[line - 1] = ",".join(fields)
    desc.write_text("\n".join(lines) + "\n")
    return desc


@pytest.mark.parametrize(("line", "column", "value", "message"), [
    (3, 5, "files/missing.csv", "line 3: column speaker_attributes: file not found"),
    (4, 9, "holiday", "line 4: column split = 'holiday'"),
    (2, 4, "P1", None),  # listener id equal to the speaker id, checked below
    (5, 1, "bad/session", "line 5: column session = 'bad/session'"),
])
def test_bad_description_line_is_named_and_nothing_is_written(
        synthetic_root: Path, tmp_path: Path, capsys, line, column, value, message):
    desc = _description_with(tmp_path, synthetic_root, line, column, value)
    if message is None:
        speaker = desc.read_text().splitlines()[1].split(",")[3]
        lines = desc.read_text().splitlines()
        f = lines[1].split(",")
        f[4] = speaker
        lines[1] = ",".join(f)
        desc.write_text("\n".join(lines) + "\n")
        message = f"line 2: speaker and listener are both '{speaker}'"
    out = tmp_path / "out"
    assert main(["data", "import", str(desc), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(desc) in err
    assert not out.exists() or not any(out.iterdir())


def test_bad_attribute_file_error_names_line_file_and_row(synthetic_root: Path,
                                                         tmp_path: Path, capsys):
    _react_description(synthetic_root, tmp_path / "user")
    desc = tmp_path / "user" / "clips.csv"
    target = desc.read_text().splitlines()[2].split(",")[6]  # line 3, listener_attributes
    path = tmp_path / "user" / target
    rows = path.read_text().splitlines()
    rows[10] = rows[10].replace(rows[10].split(",")[2], "NaN", 1)
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert main(["data", "import", str(desc), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 3 (listener)" in err and path.name in err and "row 10" in err
    assert "AU4" in err and not out.exists()


def test_duplicate_clip_and_partial_split_column(synthetic_root: Path, tmp_path: Path, capsys):
    _react_description(synthetic_root, tmp_path / "user")
    desc = tmp_path / "user" / "clips.csv"
    lines = desc.read_text().splitlines()
    desc.write_text("\n".join(lines + [lines[1]]) + "\n")
    assert main(["data", "import", str(desc), "--out", str(tmp_path / "o")]) == 2
    assert f"line {len(lines) + 1}: clip" in capsys.readouterr().err
    lines[2] = lines[2].rsplit(",", 1)[0] + ","
    desc.write_text("\n".join(lines) + "\n")
    assert main(["data", "import", str(desc), "--out", str(tmp_path / "o")]) == 2
    assert "line 3: column split is empty" in capsys.readouterr().err


def _failing_after(n: int):
    """A stand-in for the audio copy that fills the disk after n files."""
    import errno

    from regnn.data import importer

    real = importer.place_file
    calls = {"n": 0}

    def place(src, dst, how):
        calls["n"] += 1
        if calls["n"] > n:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, how)

    return place


def test_a_failed_forced_import_leaves_the_old_dataset(synthetic_root: Path, tmp_path: Path,
                                                       monkeypatch, capsys):
    from regnn.data import importer

    _react_description(synthetic_root, tmp_path / "user")
    desc = str(tmp_path / "user" / "clips.csv")
    out = tmp_path / "imported"
    assert main(["data", "import", desc, "--out", str(out)]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(importer, "place_file", _failing_after(3))  # the disk fills up
    assert main(["data", "import", desc, "--out", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the import: No space left on device (nothing was changed)" in err
    assert "Traceback" not in err
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the old import, its import.json included, untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".imported")] == []
    assert main(["data", "check", str(out)]) == 0


def test_a_failed_fresh_import_is_a_clear_error_and_leaves_nothing(
        synthetic_root: Path, tmp_path: Path, monkeypatch, capsys):
    from regnn.data import importer

    _react_description(synthetic_root, tmp_path / "user")
    monkeypatch.setattr(importer, "place_file", _failing_after(0))
    out = tmp_path / "fresh"
    assert main(["data", "import", str(tmp_path / "user" / "clips.csv"), "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert not out.exists()


def test_data_check_reports_files_the_split_csvs_do_not_list(dataset_copy: Path, capsys):
    from regnn.data import layout

    csv = dataset_copy / "test.csv"
    lines = csv.read_text().splitlines()
    dropped = lines.pop()  # the last row's persons are now unlisted
    replace_file(csv, "\n".join(lines) + "\n")  # never through the shared hard link
    speaker = dropped.split(",")[1]
    assert main(["data", "check", str(dataset_copy)]) != 0
    out = capsys.readouterr().out
    assert "unlisted-file" in out and f"{speaker}.csv" in out and f"{speaker}.wav" in out
    assert "not listed in test.csv" in out
    assert layout.EMOTION_DIR in out
