import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.io import wavfile

from conftest import SMALL_DYADS, replace_file
from regnn import schema
from regnn.data import layout
from regnn.data.audio import N_MELS, audio_features
from regnn.data.react import ReactSplit
from regnn.errors import DataError


def test_shapes_and_mirrored_order(synthetic_root: Path):
    ds = ReactSplit(synthetic_root, "test", cache_dir=synthetic_root / ".regnn-cache")
    n = ds.n_rows
    assert len(ds) == 2 * n == 2 * (SMALL_DYADS // 3)
    split = pd.read_csv(synthetic_root / "test.csv")
    assert [it.speaker_path for it in ds.items] == list(split.speaker_path) + list(
        split.listener_path)
    assert [it.listener_path for it in ds.items] == list(split.listener_path) + list(
        split.speaker_path)
    item = ds[n]  # mirrored: the first row's listener speaks
    assert item["speaker_face"].shape == (750, 25) and item["speaker_face"].dtype == np.float32
    assert item["speaker_audio"].shape == (750, N_MELS)
    np.testing.assert_array_equal(item["speaker_face"], ds.listener(0))
    np.testing.assert_array_equal(item["listener"], ds.speaker(0))
    assert ds.speakers().shape == ds.listeners().shape == (2 * n, 750, 25)


def test_neighbours_match_generator_truth(synthetic_root: Path):
    truth = json.loads((synthetic_root / "synthetic_truth.json").read_text())["groups"]
    for split in ("train", "val", "test"):
        ds = ReactSplit(synthetic_root, split)
        g = np.asarray(truth[split])
        np.testing.assert_array_equal(ds.neighbours, g[:, None] == g[None, :])
        assert ds.neighbours.dtype == bool and ds.neighbours.diagonal().all()
        j = ds.appropriate(0)
        assert 0 in j
        np.testing.assert_array_equal(ds.appropriate_reactions(0)[0], ds.listener(j[0]))


def test_unmirrored_train_keeps_original_directions(synthetic_root: Path):
    ds = ReactSplit(synthetic_root, "train", mirror=False)
    assert len(ds) == ds.n_rows
    assert ds.neighbours.shape == (ds.n_rows, ds.n_rows)


def test_all_clips_matrix_slicing_equals_split_matrix(dataset_copy: Path):
    expected = ReactSplit(dataset_copy, "val").neighbours
    (dataset_copy / "neighbour_emotion_val.npy").unlink()
    np.testing.assert_array_equal(ReactSplit(dataset_copy, "val").neighbours, expected)


def test_missing_matrices_raise_clear_error(dataset_copy: Path):
    for f in ("neighbour_emotion_val.npy", layout.ALL_MATRIX_FILE):
        (dataset_copy / f).unlink()
    with pytest.raises(DataError, match="neighbour_emotion_val.npy.*regnn data neighbours"):
        _ = ReactSplit(dataset_copy, "val").neighbours


def test_750_rows_accepted_749_rejected(dataset_copy: Path):
    ds = ReactSplit(dataset_copy, "test")
    path = ds.emotion_path(ds.items[0].speaker_path)
    lines = path.read_text().splitlines()
    replace_file(path, "\n".join(lines[:751]) + "\n")  # header + 750 rows
    arr = ReactSplit(dataset_copy, "test").speaker(0)
    assert arr.shape == (750, 25)
    replace_file(path, "\n".join(lines[:750]) + "\n")  # header + 749 rows
    with pytest.raises(DataError, match=r"749 data rows; expected at least 750") as exc:
        ReactSplit(dataset_copy, "test").speaker(0)
    assert exc.value.path == path and exc.value.kind == "too-few-rows"


def test_react2024_person_spellings_are_absorbed(dataset_copy: Path):
    ds = ReactSplit(dataset_copy, "train")
    before = ds.speakers()
    for folder in (dataset_copy / "train" / "Emotion" / "NoXI").glob("*/Expert_video"):
        folder.rename(folder.with_name("P1"))
    for folder in (dataset_copy / "train" / "Emotion" / "NoXI").glob("*/Novice_video"):
        folder.rename(folder.with_name("P2"))
    np.testing.assert_array_equal(ReactSplit(dataset_copy, "train").speakers(), before)


def test_recola_person_variants():
    v = layout.person_path_variants("RECOLA/group-1/P25/2")
    assert v == ["RECOLA/group-1/P25/2", "RECOLA/group-1/P1/2"]
    assert "RECOLA/group-2/P42/1" in layout.person_path_variants("RECOLA/group-2/P2/1")
    assert layout.person_path_variants("NoXI/001_x/Novice_video/3")[1] == "NoXI/001_x/P2/3"
    assert layout.official_clip_key("NoXI/010_2016-03-25_Paris/Expert_video/3") == (
        "NOXI", "010_2016-03-25_Paris", "3")


def test_stereo_and_44k_audio_give_the_same_features(dataset_copy: Path):
    ds = ReactSplit(dataset_copy, "test", cache_dir=dataset_copy / "cache")
    wav = ds.audio_path(ds.items[0].speaker_path)
    mono, rate = sf.read(wav, dtype="float32")
    ref = audio_features(mono, rate)
    import librosa

    hi = librosa.resample(mono, orig_sr=rate, target_sr=44_100)
    stereo = np.stack([hi, hi], axis=1)
    wav.unlink()
    sf.write(wav, stereo, 44_100, subtype="PCM_16")
    feats = ReactSplit(dataset_copy, "test", cache_dir=dataset_copy / "cache2").audio(0)
    assert feats.shape == (750, N_MELS)
    assert np.corrcoef(feats.ravel(), ref.ravel())[0, 1] > 0.98


def test_audio_features_any_length_and_bad_input():
    x = np.random.default_rng(0).normal(size=8000).astype(np.float32)
    f = audio_features(x, 8000, n_frames=30)
    assert f.shape == (30, N_MELS) and np.isfinite(f).all()
    with pytest.raises(ValueError, match="1-D or"):
        audio_features(np.zeros((2, 3, 4)), 16000)


def test_audio_cache_is_reused(dataset_copy: Path, monkeypatch: pytest.MonkeyPatch):
    cache = dataset_copy / "cache"
    ds = ReactSplit(dataset_copy, "test", cache_dir=cache)
    first = [ds.audio(i) for i in range(len(ds))]
    assert ds.cache.misses == len(ds) and ds.cache.hits == 0
    import regnn.data.audio as audio_mod

    def no_decoding(path):
        raise AssertionError(f"WAV decoded again: {path}")

    monkeypatch.setattr(audio_mod, "read_wav", no_decoding)
    ds2 = ReactSplit(dataset_copy, "test", cache_dir=cache)  # a "second epoch"
    second = [ds2.audio(i) for i in range(len(ds2))]
    assert ds2.cache.hits == len(ds2) and ds2.cache.misses == 0
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_plain_script_reads_every_listed_file(synthetic_root: Path):
    """Only pandas/numpy/scipy and the REACT layout: every listed file is readable."""
    for split in ("train", "val", "test"):
        rows = pd.read_csv(synthetic_root / f"{split}.csv", header=None).drop(0)
        persons = list(rows[1]) + list(rows[2])
        for p in persons:
            emo = pd.read_csv(synthetic_root / split / "Emotion" / f"{p}.csv", header=None)
            values = emo.drop(0).to_numpy(dtype=np.float32)
            assert values.shape == (751, 25)
            assert list(emo.iloc[0]) == list(schema.ATTRIBUTE_NAMES)
            rate, audio = wavfile.read(synthetic_root / split / "Audio_files" / f"{p}.wav")
            assert rate == 16000 and audio.shape[0] >= 30 * rate
        m = np.load(synthetic_root / f"neighbour_emotion_{split}.npy")
        assert m.shape == (2 * len(rows), 2 * len(rows))
    idx = pd.read_csv(synthetic_root / "data_indices.csv")
    assert list(idx.columns) == ["site", "chat_index", "clip_index"]
    assert np.load(synthetic_root / "Approprirate_facial_reaction.npy").shape == (
        2 * len(idx), 2 * len(idx))


def test_bad_arguments(synthetic_root: Path, tmp_path: Path):
    with pytest.raises(DataError, match="unknown split 'dev'"):
        ReactSplit(synthetic_root, "dev")
    with pytest.raises(DataError, match="dataset folder not found"):
        ReactSplit(tmp_path / "nope", "test")
    ds = ReactSplit(synthetic_root, "test")
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_video_and_3dmm_optional_modalities(tmp_path: Path):
    from regnn.data.synthetic import SynthConfig, write_synthetic

    cfg = SynthConfig(dyads=3, seed=1, clips_per_session=1, video=True, threedmm=True,
                      video_size=32)
    write_synthetic(tmp_path / "v", config=cfg)
    ds = ReactSplit(tmp_path / "v", "test", video=True, threedmm=True, video_size=32)
    item = ds[0]
    assert item["speaker_frames"].shape == (750, 32, 32, 3)
    assert item["speaker_frames"].dtype == np.uint8
    assert item["speaker_3dmm"].shape == (750, 58)
    # the drawn face moves with the attributes
    assert item["speaker_frames"].std(axis=0).max() > 0
    shutil.rmtree(tmp_path / "v" / "test" / "Video_files")
    with pytest.raises(DataError, match="speaker video not found"):
        ReactSplit(tmp_path / "v", "test", video=True)[0]
