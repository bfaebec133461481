"""The generative process of the synthetic data (:mod:`regnn.data.synthetic`, whose docstring
describes it): latent behaviour, attributes, voice, listener reactions, and the scripted
episodes of the non-aligned regimes (:mod:`regnn.data.regimes`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from regnn import schema
from regnn.data.regimes import (
    CUT_RANGE,
    EPISODE_TYPES,
    EPISODES_PER_SCRIPT,
    MIN_EPISODE,
    Regime,
    get_regime,
)
from regnn.data.synthetic_files import _upsample

LATENT_DIM = 6


@dataclass
class SynthConfig:
    dyads: int = 80
    seed: int = 0
    clips_per_session: int = 4
    clusters: int = 4
    styles: int = 3
    frames: int = schema.FILE_FRAMES
    sample_rate: int = 16_000
    smooth_sigma: float = 10.0
    speaker_noise: float = 0.35
    reaction_noise: float = 0.25
    video: bool = False
    video_size: int = 64
    threedmm: bool = False
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    regime: str = "aligned"


# --------------------------------------------------------------------------- the model
class Generator:
    """The generative process of the module docstring, with all its fixed parameters."""

    def __init__(self, cfg: SynthConfig) -> None:
        self.cfg = cfg
        rng = np.random.default_rng([cfg.seed, 1])
        L = LATENT_DIM
        self.W_au = rng.normal(0, 0.7, (15, L))
        self.b_au = rng.normal(-0.6, 0.4, 15)
        self.W_va = rng.normal(0, 0.6, (2, L))
        self.W_ex = rng.normal(0, 0.8, (8, L))
        self.b_ex = np.concatenate([[1.0], rng.normal(-0.3, 0.3, 7)])
        self.protos = np.stack([self.smooth(rng, cfg.frames) for _ in range(cfg.clusters)])
        self.M = []
        self.o = []
        for s in range(cfg.styles):
            if s == 0:
                self.M.append(0.9 * np.eye(L))
                self.o.append(np.zeros(L))
            else:
                q, _ = np.linalg.qr(rng.normal(size=(L, L)))
                self.M.append((0.6 + 0.3 * (s % 2)) * q)
                self.o.append(rng.normal(0, 0.9, L))
        self.lags = [8 + 4 * (s % 3) for s in range(cfg.styles)]
        self.to_3dmm = rng.normal(0, 0.5, (25, 58))

    def smooth(self, rng: np.random.Generator, frames: int) -> np.ndarray:
        x = gaussian_filter1d(rng.normal(size=(frames, LATENT_DIM)), self.cfg.smooth_sigma,
                              axis=0, mode="reflect")
        return (x - x.mean(0)) / (x.std(0) + 1e-8)

    def speaker_latent(self, rng: np.random.Generator, cluster: int, trait: np.ndarray
                       ) -> np.ndarray:
        c = self.cfg
        return (0.9 * self.protos[cluster] + c.speaker_noise * self.smooth(rng, c.frames)
                + 0.2 * trait)

    def reaction_latent(self, rng: np.random.Generator, u_a: np.ndarray, style: int,
                        trait: np.ndarray) -> np.ndarray:
        lag = self.lags[style]
        shifted = np.concatenate([np.repeat(u_a[:1], lag, axis=0), u_a[: len(u_a) - lag]])
        return (shifted @ self.M[style].T + self.o[style] + 0.2 * trait
                + self.cfg.reaction_noise * self.smooth(rng, len(u_a)))

    def attributes(self, u: np.ndarray) -> np.ndarray:
        """(frames, 25) attributes of a latent trajectory; within ranges by construction."""
        au = 1.0 / (1.0 + np.exp(-2.0 * (u @ self.W_au.T + self.b_au)))
        va = np.tanh(0.8 * (u @ self.W_va.T))
        logits = 1.5 * (u @ self.W_ex.T + self.b_ex)
        logits -= logits.max(axis=1, keepdims=True)
        ex = np.exp(logits)
        ex /= ex.sum(axis=1, keepdims=True)
        return np.concatenate([au, va, ex], axis=1).astype(np.float32)

    def voice(self, rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
        """Mono float32 audio at ``sample_rate`` whose energy/pitch/brightness follow ``u``."""
        sr = self.cfg.sample_rate
        energy = _upsample(1.0 / (1.0 + np.exp(-2.5 * (u[:, 0] + 0.3))), sr)
        f0 = _upsample(140.0 + 40.0 * np.tanh(u[:, 1]), sr)
        bright = _upsample(1.0 / (1.0 + np.exp(-u[:, 2])), sr)
        n = len(f0)
        phase = (2 * np.pi / sr) * np.cumsum(f0)
        s1 = np.sin(phase).astype(np.float32)
        two_cos = (2 * np.cos(phase)).astype(np.float32)
        # harmonics by the Chebyshev recurrence sin(h x) = 2 cos(x) sin((h-1) x) - sin((h-2) x)
        prev, cur, weight = np.zeros_like(s1), s1, np.ones_like(s1)
        src = s1.copy()
        for _ in range(2, 6):
            prev, cur = cur, two_cos * cur - prev
            weight *= bright
            src += weight * cur
        y = (0.12 * energy) * src
        y += 0.01 * rng.standard_normal(n, dtype=np.float32)
        return np.clip(y, -1, 1).astype(np.float32)


# --------------------------------------------------------------------------- regimes
class EpisodeGenerator(Generator):
    """Scripted episodes with shifted boundaries, and the knobs of the non-aligned regimes.

    *Episodes.* A bank of :data:`EPISODE_TYPES` behaviour episodes, each a latent state (a
    mean ``mu_e`` of norm 4: clearly different behaviours, far apart compared with the noise)
    with a texture of its own (a smooth trajectory played from the episode's start).
    Context c is a script of :data:`EPISODES_PER_SCRIPT` distinct episodes in a fixed order
    (scripts differ between contexts; they may share episodes). A speaker of context c plays
    the script with its own cut points, drawn uniformly in :data:`CUT_RANGE` of the clip
    with every episode at least :data:`MIN_EPISODE` of it: ``u_A = 0.9 (mu_e(t) + 0.6
    texture_e(t - start_e)) + 0.35 n_A + 0.2 trait_A``, the state sequence smoothed over
    about 0.4 s.

    *Listeners.* ``u_B = g_B coupling M_s u_A(t - l_s) + o_s + w_b trait_B + noise n_B`` with
    every style a scaled random rotation (no mirroring style: a mirror would behave like its
    speaker, which a timing-tolerant measure cannot tell apart) and ``g_B`` the listener's own
    gain (1 unless idiosyncratic).

    *Audio regime.* The speaker's face is ``0.9 n + 0.2 trait`` (no episodes); the episode
    latent drives only the voice, and the listener reacts to it.
    """

    def __init__(self, cfg: SynthConfig, regime: Regime) -> None:
        super().__init__(cfg)
        self.regime = regime
        rng = np.random.default_rng([cfg.seed, 11])
        L = LATENT_DIM
        means = rng.normal(size=(EPISODE_TYPES, L))
        self.episode_means = 4.0 * means / np.linalg.norm(means, axis=1, keepdims=True)
        self.textures = np.stack([self.smooth(rng, cfg.frames) for _ in range(EPISODE_TYPES)])
        n_scripts = math.perm(EPISODE_TYPES, EPISODES_PER_SCRIPT)
        if cfg.clusters > n_scripts:
            raise ValueError(f"the episodes regimes have {n_scripts} distinct scripts; "
                             f"--clusters {cfg.clusters} is too many")
        scripts: list[tuple[int, ...]] = []
        while len(scripts) < cfg.clusters:
            s = tuple(int(e) for e in rng.choice(EPISODE_TYPES, EPISODES_PER_SCRIPT,
                                                 replace=False))
            if s not in scripts:
                scripts.append(s)
        self.scripts = scripts
        self.M, self.o = [], []
        for s in range(cfg.styles):
            q, _ = np.linalg.qr(rng.normal(size=(L, L)))
            self.M.append((0.7 + 0.2 * (s % 2)) * q)
            self.o.append(rng.normal(0, 0.9, L))

    def episode_latent(self, rng: np.random.Generator, context: int
                       ) -> tuple[np.ndarray, list[int]]:
        """The episode part of a speaker's latent and its cut points (frames)."""
        T = self.cfg.frames
        lo, hi = CUT_RANGE
        while True:  # boundaries anywhere in CUT_RANGE, every episode at least MIN_EPISODE
            cuts = sorted(int(round(v)) for v in rng.uniform(lo * T, hi * T,
                                                             EPISODES_PER_SCRIPT - 1))
            if min(np.diff([0, *cuts, T])) >= MIN_EPISODE * T:
                break
        bounds = [0, *cuts, T]
        state = np.empty((T, LATENT_DIM))
        texture = np.empty((T, LATENT_DIM))
        for e, (a, b) in zip(self.scripts[context], zip(bounds[:-1], bounds[1:]), strict=True):
            state[a:b] = self.episode_means[e]
            texture[a:b] = self.textures[e][: b - a]
        state = gaussian_filter1d(state, 10.0, axis=0, mode="nearest")
        return state + 0.6 * texture, cuts

    def speaker_latent(self, rng: np.random.Generator, cluster: int, trait: np.ndarray
                       ) -> np.ndarray:
        """The latent a listener perceives (the voice's; the face's unless ``audio``)."""
        return self.speaker(rng, cluster, trait)[1]

    def speaker(self, rng: np.random.Generator, context: int, trait: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(face latent, voice latent, cut points) of a speaker of ``context``."""
        c = self.cfg
        episodes, cuts = self.episode_latent(rng, context)
        own = c.speaker_noise * self.smooth(rng, c.frames) + 0.2 * trait
        driven = 0.9 * episodes + own
        if self.regime.face_shows_episodes:
            return driven, driven, cuts
        face = 0.9 * self.smooth(rng, c.frames) + 0.2 * trait
        return face, driven, cuts

    def reaction_latent(self, rng: np.random.Generator, u_a: np.ndarray, style: int,
                        trait: np.ndarray, gain: float = 1.0) -> np.ndarray:
        r = self.regime
        lag = self.lags[style]
        shifted = np.concatenate([np.repeat(u_a[:1], lag, axis=0), u_a[: len(u_a) - lag]])
        return (gain * r.coupling * (shifted @ self.M[style].T) + self.o[style]
                + r.listener_baseline * trait + r.reaction_noise * self.smooth(rng, len(u_a)))

    def voice(self, rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
        """As :meth:`Generator.voice`, with a speaking rate: syllable-like energy bursts at
        3-6 per second following ``u_3``."""
        sr = self.cfg.sample_rate
        rate = 3.0 + 3.0 / (1.0 + np.exp(-1.5 * u[:, 3]))  # syllables per second
        syl_phase = (2 * np.pi / sr) * np.cumsum(_upsample(rate, sr).astype(np.float64))
        bursts = (0.25 + 0.75 * np.sin(0.5 * syl_phase) ** 2).astype(np.float32)
        return np.clip(super().voice(rng, u) * bursts, -1, 1).astype(np.float32)


def make_generator(cfg: SynthConfig) -> Generator:
    """The generator of ``cfg.regime``."""
    regime = get_regime(cfg.regime)
    return Generator(cfg) if not regime.episodes else EpisodeGenerator(cfg, regime)


