"""Python API: react to any clip with a trained run.

>>> from regnn.api import ReactionGenerator                      # doctest: +SKIP
>>> gen = ReactionGenerator.from_run("runs/demo")
>>> reactions = gen.generate(speaker_attributes, samples, 16000, k=10, seed=0)
>>> reactions.shape                                             # (10, T, 25)

``speaker_attributes`` is a ``(T, 25)`` array of the speaker's per-frame facial attributes at
25 fps (REACT order, :mod:`regnn.schema`); ``audio_samples`` is the speaker's waveform (mono
or ``(n, channels)``) at ``sample_rate`` Hz covering the same T frames. Audio features are
computed exactly as the data layer computes them for training (``regnn.data.audio``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from regnn.errors import ConfigError
from regnn.generate import postprocess
from regnn.models.invertible import InverseInfo
from regnn.schema import NUM_ATTRIBUTES


class ReactionGenerator:
    """A trained reaction generator loaded from a run folder (see :func:`regnn.train.train`)."""

    def __init__(self, module: Any) -> None:
        self.module = module.eval()
        self.config = module.config
        self.last_info: InverseInfo | None = None

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best",
                 device: str = "cpu") -> ReactionGenerator:
        """Load a run (``checkpoint`` best or last) onto ``device`` (cpu, cuda, cuda:N or
        auto); checkpoints saved on any device load on any other."""
        from regnn.models.runs import load_module
        from regnn.utils.device import resolve_device

        return cls(load_module(run_dir, checkpoint, map_location=str(resolve_device(device))))

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def generate(self, speaker_attributes: np.ndarray, audio_samples: np.ndarray | None = None,
                 sample_rate: int | None = None, k: int | None = None, seed: int = 0,
                 sigma: float | None = None, binarize_aus: bool | None = None,
                 noise: str | None = None, noise_scale: float | None = None) -> np.ndarray:
        """``(T, 25)`` attributes (+ waveform) -> ``(k, T, 25)`` float32 reactions. Unset
        sampling settings (``k``, ``sigma``, ``binarize_aus``, ``noise``, ``noise_scale``)
        are the run's ``generate`` settings."""
        cfg = self.config.model
        face = np.asarray(speaker_attributes, dtype=np.float32)
        if face.ndim != 2 or face.shape[1] != cfg.face_dim:
            raise ConfigError(f"speaker_attributes must have shape (T, {cfg.face_dim}), "
                              f"got {face.shape}")
        T = face.shape[0]
        if cfg.window > T:
            raise ConfigError(f"the clip has {T} frames; the model needs at least one window "
                              f"of {cfg.window} frames")
        audio = None
        if cfg.use_audio:
            if audio_samples is None or sample_rate is None:
                raise ConfigError("this model uses the speaker's audio: pass audio_samples and "
                                  "sample_rate")
            audio = self.audio_features(audio_samples, sample_rate, T)
        return self.generate_features(face, audio, k=k, seed=seed, sigma=sigma,
                                      binarize_aus=binarize_aus, noise=noise,
                                      noise_scale=noise_scale)

    @staticmethod
    def audio_features(audio_samples: np.ndarray, sample_rate: int, n_frames: int) -> np.ndarray:
        from regnn.data.audio import audio_features

        try:
            return audio_features(np.asarray(audio_samples, dtype=np.float32), int(sample_rate),
                                  n_frames=n_frames)
        except ValueError as exc:
            raise ConfigError(f"bad audio input: {exc}") from None

    def generate_features(self, face: np.ndarray | None, audio: np.ndarray | None,
                          k: int | None = None, seed: int = 0, sigma: float | None = None,
                          binarize_aus: bool | None = None, noise: str | None = None,
                          noise_scale: float | None = None) -> np.ndarray:
        """Like :meth:`generate` from per-frame features: face ``(T, F)``, audio ``(T, 64)``."""
        g_cfg = self.module.sampling(samples=k, sigma=sigma, binarize_aus=binarize_aus,
                                     noise=noise, noise_scale=noise_scale)
        dev = self.device
        f = None if face is None else torch.as_tensor(face, dtype=torch.float32, device=dev)[None]
        a = None if audio is None else torch.as_tensor(audio, dtype=torch.float32, device=dev)[None]
        g = torch.Generator().manual_seed(seed)  # noise drawn on the CPU: same on any device
        with torch.no_grad():
            pred, info = self.module.generate_clips(f, a, g_cfg.samples, g_cfg.sigma, g,
                                                    noise=g_cfg.noise,
                                                    noise_scale=g_cfg.noise_scale)
        self.last_info = info
        out = postprocess(pred[0].float().cpu().numpy(), g_cfg.binarize_aus)
        assert out.shape[-1] == NUM_ATTRIBUTES
        return out.astype(np.float32)
