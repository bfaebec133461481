"""`regnn data check` finds every class of problem on deliberately broken copies."""

from pathlib import Path

import numpy as np
import pytest

from conftest import replace_file
from regnn.cli import main
from regnn.data.check import check_dataset
from regnn.data.react import ReactSplit
from regnn.errors import DataError


def _emotion(root: Path, split: str = "test", k: int = 0) -> Path:
    ds = ReactSplit(root, split)
    return ds.emotion_path(ds.items[k].speaker_path)


def _edit_row(path: Path, row: int, fn) -> None:
    lines = path.read_text().splitlines()
    cells = lines[row].split(",")
    lines[row] = ",".join(fn(cells))
    replace_file(path, "\n".join(lines) + "\n")


def _set(col: int, value: str):
    def fn(cells):
        cells[col] = value
        return cells
    return fn


def _kinds(root: Path) -> dict[str, list]:
    problems, _ = check_dataset(root)
    out: dict[str, list] = {}
    for p in problems:
        out.setdefault(p.kind, []).append(p)
    return out


def test_clean_dataset_passes(synthetic_root: Path, capsys):
    assert main(["data", "check", str(synthetic_root)]) == 0
    assert "OK: no problems" in capsys.readouterr().out


BREAKS = {
    # kind: (how to break the test split's first speaker CSV, the row reported, message part)
    "bad-columns": (lambda p: _edit_row(p, 5, lambda c: c[:-1]), 5, "24 columns; expected 25"),
    "not-numeric": (lambda p: _edit_row(p, 7, _set(3, "abc")), 7, "non-numeric value 'abc'"),
    "not-finite": (lambda p: _edit_row(p, 9, _set(0, "nan")), 9, "AU1 is nan"),
    "out-of-range": (lambda p: _edit_row(p, 11, _set(15, "1.7")), 11,
                     "valence = 1.7 outside [-1, 1]"),
    "bad-simplex": (lambda p: _edit_row(p, 13, _set(17, "0.9999")), 13,
                    "expression probabilities sum to"),
    "too-few-rows": (lambda p: replace_file(p, "\n".join(p.read_text().splitlines()[:400])),
                     None, "399 data rows; expected at least 750"),
}


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_each_csv_problem_is_reported_with_file_and_row(dataset_copy: Path, kind: str, capsys):
    path = _emotion(dataset_copy)
    breaker, row, text = BREAKS[kind]
    if kind == "bad-simplex":  # keep the value in range but break the row sum
        lines = path.read_text().splitlines()
        cells = lines[13].split(",")
        cells[17] = f"{float(cells[17]) + 0.5:.6f}" if float(cells[17]) < 0.5 else "0.0"
        lines[13] = ",".join(cells)
        replace_file(path, "\n".join(lines) + "\n")
    else:
        breaker(path)
    found = _kinds(dataset_copy)
    assert list(found) == [kind], found
    problem = found[kind][0]
    assert problem.path == path and problem.row == row and text in problem.message
    # the CLI lists it and fails; the reader raises the same error
    assert main(["data", "check", str(dataset_copy)]) == 1
    out = capsys.readouterr().out
    assert str(path) in out and f"[{kind}]" in out and "FAILED: 1 problems" in out
    with pytest.raises(DataError) as exc:
        ReactSplit(dataset_copy, "test").speaker(0)
    assert exc.value.kind == kind and exc.value.path == path


def test_missing_files_and_audio_problems(dataset_copy: Path):
    csv = _emotion(dataset_copy, "val", 1)
    csv.unlink()
    ds = ReactSplit(dataset_copy, "train")
    wav = ds.audio_path(ds.items[0].speaker_path)
    replace_file(wav, b"not a wav file")
    wav2 = ds.audio_path(ds.items[1].speaker_path)
    import soundfile as sf

    wav2.unlink()
    sf.write(wav2, np.zeros(16000 * 5, dtype=np.float32), 16000)
    found = _kinds(dataset_copy)
    assert found["missing-file"][0].path == csv
    assert found["unreadable"][0].path == wav
    assert found["too-short"][0].path == wav2 and "5.00 s of audio" in found["too-short"][0].message
    with pytest.raises(DataError, match="cannot read audio"):
        ReactSplit(dataset_copy, "train", cache_dir=dataset_copy / "c").audio(0)


def test_matrix_problems(dataset_copy: Path):
    m = np.load(dataset_copy / "neighbour_emotion_test.npy")
    np.save(dataset_copy / "neighbour_emotion_test.npy.tmp.npy", m[:-1, :-1])
    (dataset_copy / "neighbour_emotion_test.npy").unlink()
    (dataset_copy / "neighbour_emotion_test.npy.tmp.npy").rename(
        dataset_copy / "neighbour_emotion_test.npy")
    bad_diag = np.load(dataset_copy / "neighbour_emotion_val.npy")
    bad_diag[2, 2] = 0
    (dataset_copy / "neighbour_emotion_val.npy").unlink()
    np.save(dataset_copy / "neighbour_emotion_val.npy", bad_diag)
    (dataset_copy / "neighbour_emotion_train.npy").unlink()
    (dataset_copy / "Approprirate_facial_reaction.npy").unlink()
    problems, _ = check_dataset(dataset_copy)
    msgs = {p.path.name: p for p in problems}
    assert "expected (8, 8)" in msgs["neighbour_emotion_test.npy"].message
    assert "diagonal entry 2 is 0" in msgs["neighbour_emotion_val.npy"].message
    assert msgs["neighbour_emotion_train.npy"].kind == "missing-file"
    with pytest.raises(DataError, match=r"shape \(7, 7\); expected \(8, 8\)"):
        _ = ReactSplit(dataset_copy, "test").neighbours


def test_bad_split_list(dataset_copy: Path):
    replace_file(dataset_copy / "val.csv", "a,b,c\n0,x,y\n")
    problems, _ = check_dataset(dataset_copy)
    assert problems[0].kind == "bad-split" and "expected ',speaker_path,listener_path'" in str(
        problems[0])
    replace_file(dataset_copy / "val.csv", ",speaker_path,listener_path\n0,NoXI/a/b/1\n")
    with pytest.raises(DataError, match=r"row 1: expected 3 fields"):
        ReactSplit(dataset_copy, "val")
    (dataset_copy / "test.csv").unlink()
    problems, _ = check_dataset(dataset_copy)
    assert any(p.kind == "missing-file" and p.path.name == "test.csv" for p in problems)
