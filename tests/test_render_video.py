"""The grid animation: its frames, and videos whose frame count and duration equal the clip's."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from regnn.errors import ConfigError
from regnn.render.video import GridAnimator, Panel, grid_shape, probe_video, write_video
from regnn.schema import CLIP_FRAMES, FPS


def sequence(seed: int, t: int = CLIP_FRAMES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 1 / (1 + np.exp(-np.cumsum(rng.normal(0, 0.1, (t, 25)), axis=0)))
    x[:, 15:17] = 2 * x[:, 15:17] - 1
    x[:, 17:] /= x[:, 17:].sum(axis=1, keepdims=True)
    return x.astype(np.float32)


def panels(n_generated: int = 2, t: int = CLIP_FRAMES) -> list[Panel]:
    return ([Panel("speaker", sequence(0, t), "speaker"),
             Panel("listener", sequence(1, t), "listener")]
            + [Panel(f"gen {k}", sequence(2 + k, t)) for k in range(n_generated)])


def ffmpeg_info(path: Path) -> str:
    import imageio_ffmpeg

    res = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True, text=True)
    return res.stderr


def test_grid_shape() -> None:
    assert grid_shape(1) == (1, 1)
    assert grid_shape(12) == (3, 4)
    assert grid_shape(4, columns=4) == (1, 4)
    assert grid_shape(5, columns=2) == (3, 2)


def test_frames_change_with_the_attributes_and_the_cursor() -> None:
    an = GridAnimator(panels(1, 40), face_size=64, supersample=1)
    assert an.n_frames == 40 and an.width % 16 == 0 and an.height % 16 == 0
    f0, f1 = an.frame(0), an.frame(39)
    assert f0.shape == (an.height, an.width, 3)
    assert not np.array_equal(f0, f1)
    # a still clip still changes (the cursor and clock move) ...
    still = np.repeat(sequence(5, 1), 40, axis=0)
    an2 = GridAnimator([Panel("s", still, "speaker")], face_size=64, supersample=1)
    g0, g1 = an2.frame(0), an2.frame(39)
    diff = np.abs(g0.astype(int) - g1.astype(int)).max(axis=-1) > 0
    rows = np.nonzero(diff.any(axis=1))[0]
    # ... but only below the faces: the face itself is identical.
    assert rows.size and rows.min() >= an2.face_origin(0)[1] + an2.face_size
    with pytest.raises(IndexError):
        an.frame(40)


def test_bad_panel_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(T, 25\)"):
        Panel("x", np.zeros((10, 24)))
    with pytest.raises(ValueError, match="role"):
        Panel("x", np.zeros((10, 25)), role="audience")


def test_mp4_has_the_clips_frames_duration_and_speaker_audio(tmp_path: Path) -> None:
    sr = 16000
    wav = tmp_path / "speaker.wav"
    n_audio = int(sr * 751 / FPS)  # a released clip's audio: 751 frames, longer than 750
    sf.write(wav, 0.1 * np.sin(np.arange(n_audio) * 2 * np.pi * 220 / sr), sr)
    an = GridAnimator(panels(2), face_size=48, supersample=1)
    out = tmp_path / "clip.mp4"
    info = write_video(an, out, audio_path=wav, progress=False)
    assert info.path == out and info.audio and info.frames == CLIP_FRAMES
    n, secs = probe_video(out)
    assert n == CLIP_FRAMES
    assert secs == pytest.approx(CLIP_FRAMES / FPS, abs=1e-6)
    meta = ffmpeg_info(out)
    assert "Audio: aac" in meta and "Video: h264" in meta
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", meta).groups()
    assert int(h) * 3600 + int(m) * 60 + float(s) == pytest.approx(CLIP_FRAMES / FPS, abs=0.05)
    assert not list(tmp_path.glob(".clip.mp4*")), "temporary file left behind"


def test_mp4_without_audio_file_says_so(tmp_path: Path) -> None:
    an = GridAnimator(panels(0, 25), face_size=48, supersample=1)
    info = write_video(an, tmp_path / "x.mp4", audio_path=tmp_path / "missing.wav",
                       progress=False)
    assert not info.audio and "not found" in info.notes[0]
    assert probe_video(info.path) == (25, pytest.approx(1.0))


def test_gif_frames_and_duration_with_frame_step(tmp_path: Path) -> None:
    an = GridAnimator(panels(1), face_size=48, supersample=1)
    info = write_video(an, tmp_path / "clip.gif", step=2, progress=False)
    assert info.frames == CLIP_FRAMES // 2 and info.fps == FPS / 2
    n, secs = probe_video(info.path)
    assert n == CLIP_FRAMES // 2
    assert secs == pytest.approx(CLIP_FRAMES / FPS)


def test_unsupported_format(tmp_path: Path) -> None:
    an = GridAnimator(panels(0, 5), face_size=48, supersample=1)
    with pytest.raises(ConfigError, match="use .mp4 or .gif"):
        write_video(an, tmp_path / "x.avi", progress=False)


def test_mp4_falls_back_to_gif_without_ffmpeg(tmp_path: Path, monkeypatch) -> None:
    import regnn.render.video as video

    monkeypatch.setattr(video, "find_ffmpeg", lambda: None)
    an = GridAnimator(panels(0, 10), face_size=48, supersample=1)
    info = write_video(an, tmp_path / "x.mp4", progress=False)
    assert info.path == tmp_path / "x.gif" and not (tmp_path / "x.mp4").exists()
    assert "wrote a GIF instead" in info.notes[0]
    assert probe_video(info.path) == (10, pytest.approx(0.4))


def test_gif_bytes_are_deterministic(tmp_path: Path) -> None:
    an = GridAnimator(panels(1, 20), face_size=48)
    a = write_video(an, tmp_path / "a.gif", progress=False).path.read_bytes()
    b = write_video(an, tmp_path / "b.gif", progress=False).path.read_bytes()
    assert a == b
