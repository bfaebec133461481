"""Online REGNN and ReactionStream: causality, stream = offline, continuity, audio features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regnn.config import RunConfig, merge
from regnn.data.audio import audio_features
from regnn.errors import ConfigError, DataError
from regnn.online.audio import StreamingLogMel
from regnn.online.model import OnlineREGNN, online_overrides
from regnn.online.stream import ToyStream

T = 200


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Chunks are tiny: one intra-op thread is fastest, and immune to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(one_thread) -> OnlineREGNN:
    torch.manual_seed(0)
    cfg = merge(RunConfig(), {"model": {"width": 32, "heads": 2, "edge_channels": 4},
                              **{k: v for k, v in online_overrides(12, 4).items()}})
    return OnlineREGNN(cfg.model).eval()


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(T)[:, None]
    face = (0.5 + 0.4 * np.sin(t / 9.0 + rng.uniform(0, 6, 25))).astype(np.float32)
    audio = rng.standard_normal((T, 64)).astype(np.float32)
    return face, audio


def segmented(stream, face: np.ndarray, audio: np.ndarray, seed: int) -> np.ndarray:
    """Push in random pieces, audio and face split at different points."""
    rng = np.random.default_rng(seed)
    outs, i, j = [], 0, 0
    while i < len(face) or j < len(audio):
        n, m = rng.integers(0, 7, 2)
        outs.append(stream.push_features(face[i:i + n], audio[j:j + m]))
        i, j = min(i + n, len(face)), min(j + m, len(audio))
    return np.concatenate(outs, axis=1)


def test_online_config_and_shapes(model: OnlineREGNN) -> None:
    assert (model.graph, model.hop, model.lag) == (12, 4, 3)
    assert model.net.cfg.causal and model.net.cfg.window == 12
    assert online_overrides(16, 8)["model"] == {"name": "regnn-online", "causal": True,
                                                "window": 16, "hop": 8, "stride": 8}
    assert merge(RunConfig(), online_overrides(16, 8)).model.span == 23  # D + H - 1


def test_online_configs_saved_before_the_hop_field_load_as_window_and_hop() -> None:
    from regnn.config import config_from_dict

    old = RunConfig().to_dict()
    old["model"].pop("hop")
    old["model"].update(name="regnn-online", causal=True, window=23, stride=8)  # L, H
    m = config_from_dict(old).model
    assert (m.window, m.hop, m.stride, m.span) == (16, 8, 8, 23)
    with pytest.raises(ConfigError, match="must be larger than --hop"):
        online_overrides(8, 8)


def test_stream_equals_offline_generation(model: OnlineREGNN, clip) -> None:
    face, audio = clip
    offline, info = model.generate(face[None], audio[None], k=3, seed=11)
    assert offline.shape == (1, 3, T, 25) and info.converged
    for seed in (1, 2):
        streamed = segmented(model.stream(k=3, seed=11), face, audio, seed)
        np.testing.assert_array_equal(streamed, offline[0])
    other, _ = model.generate(face[None], audio[None], k=3, seed=12)
    assert not np.allclose(other, offline)  # the seed matters
    assert np.abs(offline[0, 0] - offline[0, 1]).mean() > 1e-3  # K different reactions


def test_causality(model: OnlineREGNN, clip) -> None:
    face, audio = clip
    base, _ = model.generate(face[None], audio[None], k=2, seed=3)
    for t in (0, 5, 37, 120):
        f2, a2 = face.copy(), audio.copy()
        f2[t + 1:] = np.random.default_rng(t).random(f2[t + 1:].shape)
        a2[t + 1:] += 3.0
        changed, _ = model.generate(f2[None], a2[None], k=2, seed=3)
        np.testing.assert_array_equal(changed[0, :, : t + 1], base[0, :, : t + 1])
        assert not np.allclose(changed[0, :, t + 1:], base[0, :, t + 1:])


def _boundary_ratio(pred: np.ndarray, hop: int) -> float:
    """Mean |frame step| at chunk boundaries over the mean interior step."""
    step = np.abs(np.diff(pred, axis=-2)).mean(axis=(0, -1))  # (T-1,): step t -> t+1
    at = np.arange(1, len(step) + 1) % hop == 0  # the step into a chunk's first frame
    return float(step[at].mean() / step[~at].mean())


def test_chunk_boundaries_are_as_smooth_as_the_interior(model: OnlineREGNN, clip) -> None:
    """The step into a chunk's first frame is no larger than a step inside a chunk (an
    untrained model: small σ so that its window-to-window disagreement shows)."""
    face, audio = clip
    kw = dict(k=4, sigma=0.05, noise="gaussian", seed=5, postprocess=False)
    smooth, _ = model.generate(face[None], audio[None], smooth=True, **kw)
    raw, _ = model.generate(face[None], audio[None], smooth=False, **kw)
    r_smooth, r_raw = _boundary_ratio(smooth[0], 4), _boundary_ratio(raw[0], 4)
    assert r_smooth < 1.15, r_smooth
    assert r_raw > r_smooth + 0.15, (r_raw, r_smooth)  # without the carried tail: a jump


def test_audio_through_samples_matches_offline_features(model: OnlineREGNN) -> None:
    rng = np.random.default_rng(4)
    n = 64
    samples = (0.3 * np.sin(np.arange(n * 640) / 7.0) + 0.05 * rng.standard_normal(n * 640))
    samples = samples.astype(np.float32)
    face = rng.random((n, 25)).astype(np.float32)
    feats = audio_features(samples, 16_000, n)
    offline, _ = model.generate(face[None], feats[None], k=2, seed=0)
    s = model.stream(k=2, seed=0)
    out = np.concatenate([s.push(face[i], samples[i * 640:(i + 1) * 640], 16_000)
                          for i in range(n)], axis=1)
    # the last frame's offline features see padding past the end of the clip; compare before
    np.testing.assert_allclose(out[:, : n - 1], offline[0, :, : n - 1], atol=2e-3)


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_streaming_logmel_equals_offline_features(rate: int) -> None:
    rng = np.random.default_rng(rate)
    n = rate * 3
    t = np.arange(n) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.7 * t))
         + 0.05 * rng.standard_normal(n)).astype(np.float32)
    offline = audio_features(x, rate, 75)
    ex = StreamingLogMel(rate)
    step = rate // 25
    online = np.concatenate([ex.push(x[i:i + step]) for i in range(0, n, step)])
    assert online.shape[1] == 64 and online.shape[0] >= 73
    m = min(len(online), 74)  # the last offline frame is padded past the clip's end
    tol = 1e-4 if rate == 16_000 else 1e-3
    np.testing.assert_allclose(online[:m], offline[:m], atol=tol)
    assert ex.frames == len(online)


def test_lockstep_release_and_lag_limit() -> None:
    rng = np.random.default_rng(0)
    face = rng.random((300, 25)).astype(np.float32)
    audio = rng.standard_normal((300, 64)).astype(np.float32)
    s = ToyStream(k=2, seed=0)
    assert s.push_features(face[:10]).shape == (2, 0, 25)  # waits for audio
    assert s.push_features(face[10:12], audio[:5]).shape == (2, 5, 25)
    assert (s.frames_in, s.frames_out) == (12, 5)
    with pytest.raises(DataError, match="face frames would be 258 frames ahead"):
        s.push_features(face[12:263])
    assert (s.frames_in, s.frames_out) == (12, 5)  # a refused push changes nothing
    with pytest.raises(DataError, match=r"shape \(n, 25\)"):
        s.push_features(np.zeros((2, 24), np.float32))
    with pytest.raises(DataError, match="NaN"):
        s.push_features(np.full((1, 25), np.nan, np.float32))
    full = ToyStream(k=2, seed=0).push_features(face, audio)
    s2 = ToyStream(k=2, seed=0)
    np.testing.assert_array_equal(segmented(s2, face, audio, 7), full)


def test_sessions_pushed_together_match_sessions_pushed_alone(model: OnlineREGNN, clip) -> None:
    """push_many (the server's batch): the chunks of several streams computed in one forward
    pass give each stream its own frames (within the inverse's tolerance), a bad input fails
    only its own job, and a stream's state goes on as if it had been pushed alone."""
    from regnn.online.stream import push_many

    face, audio = clip
    sr = 16_000
    rng = np.random.default_rng(3)
    wave = (0.1 * rng.standard_normal(T * sr // 25)).astype(np.float32)
    alone = [model.stream(k=k, seed=s) for k, s in ((3, 1), (3, 2), (2, 3), (3, 4))]
    batch = [model.stream(k=k, seed=s) for k, s in ((3, 1), (3, 2), (2, 3), (3, 4))]
    per = sr // 25
    got: list[list[np.ndarray]] = [[] for _ in batch]
    want: list[list[np.ndarray]] = [[] for _ in alone]
    for i in range(0, 40, 5):  # 5 frames a message: each stream needs a chunk or two
        jobs = []
        for j, (a, b) in enumerate(zip(alone, batch)):
            f = face[i:i + 5] + 0.01 * j
            want[j].append(a.push(f, wave[i * per:(i + 5) * per], sr))
            jobs.append((b, f, wave[i * per:(i + 5) * per], sr))
        jobs.append((batch[0], face[:1], wave[:per], 8000))  # changed sample rate: refused
        results = push_many(jobs[:4]) + push_many(jobs[4:])
        assert isinstance(results[4], DataError) and "sample rate changed" in str(results[4])
        for j in range(4):
            got[j].append(results[j])
    for j in range(4):
        g, w = np.concatenate(got[j], axis=1), np.concatenate(want[j], axis=1)
        assert g.shape == w.shape == (batch[j].k, 40, 25)
        np.testing.assert_allclose(g, w, atol=1e-4)
    assert batch[0].frames_in == 40  # the refused push left the stream unchanged


def test_batched_window_noise_equals_each_stream_alone_and_carries_over(model: OnlineREGNN
                                                                         ) -> None:
    """The server draws the "residual" noise of a batch's streams together; each stream must
    get exactly its own draws (its generator, its AR(1) state), whether it is at its first
    window or further on, and a window's first D - H frames are the previous window's last
    (one noise value per node and listener frame, module docstring)."""
    import copy

    from regnn.online.model import REGNNStream

    noisy = copy.deepcopy(model)
    noisy.net.resid_sq.fill_(0.04)  # an untrained model has zero residual noise
    noisy.net.resid_step_sq.fill_(0.01)
    D, H = noisy.graph, noisy.hop
    fresh, ahead = noisy.stream(k=2, seed=5), noisy.stream(k=2, seed=6)
    fresh_ref, ahead_ref = noisy.stream(k=2, seed=5), noisy.stream(k=2, seed=6)
    ahead._advance_noise()
    ahead_ref._advance_noise()
    before = ahead._eps.clone()
    got = REGNNStream._advance_noise_many([fresh, ahead])
    want = torch.stack([fresh_ref._advance_noise(), ahead_ref._advance_noise()])
    assert got.shape == (2, 2, 25, D) and got.abs().min() > 0
    assert torch.equal(got, want)
    assert torch.equal(got[1, :, :, :D - H], before[:, :, H:])
    assert not torch.equal(got[0], got[1])
