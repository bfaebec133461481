"""Per-frame audio features aligned to the 25 fps facial attributes.

Feature: **log-mel spectrogram**, 64 mel bands (as VGGish, which the paper uses), computed by
librosa on the signal mixed to mono and resampled to 16 kHz, with a 1024-sample window and a
hop of 640 samples (40 ms), so frame t of the features is centred on video frame t. Values are
``log(mel_power + 1e-6)``. Clips shorter than the requested number of frames are padded by
repeating the last frame; longer ones are cut. Any input sample rate and channel count works.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np

from regnn import schema
from regnn.errors import DataError
from regnn.utils.io import save_npy

SAMPLE_RATE = 16_000
HOP = SAMPLE_RATE // schema.FPS  # 640 samples = 40 ms
N_FFT = 1024
N_MELS = 64
FEATURE_VERSION = "logmel64-v1"


def audio_features(samples: np.ndarray, sample_rate: int,
                   n_frames: int = schema.CLIP_FRAMES) -> np.ndarray:
    """Log-mel features ``(n_frames, 64)`` float32 of ``samples`` ((n,) or (n, channels))."""
    import librosa

    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"audio samples must be 1-D or (n, channels), got shape {x.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if sample_rate != SAMPLE_RATE and x.size:
        x = librosa.resample(x, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
    if x.size < N_FFT:
        x = np.pad(x, (0, N_FFT - x.size))
    mel = librosa.feature.melspectrogram(
        y=x, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, power=2.0,
    )
    feats = np.log(mel + 1e-6).T.astype(np.float32)  # (frames, 64)
    if feats.shape[0] >= n_frames:
        return np.ascontiguousarray(feats[:n_frames])
    pad = np.repeat(feats[-1:], n_frames - feats.shape[0], axis=0)
    return np.concatenate([feats, pad], axis=0)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a WAV (any rate, mono or stereo) as float32 ``(n, channels)`` and its rate."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as exc:
        raise DataError(f"cannot read audio: {exc}", path=path, kind="unreadable") from None
    return data, int(rate)


class AudioFeatureCache:
    """Disk cache of :func:`audio_features` per WAV file, keyed by path, size, mtime, version.

    A second epoch (or a second process) reads the ``.npy`` instead of decoding the WAV.
    ``hits``/``misses`` count what happened, for tests and progress messages.
    """

    def __init__(self, cache_dir: str | Path, n_frames: int = schema.CLIP_FRAMES) -> None:
        self.dir = Path(cache_dir)
        self.n_frames = n_frames
        self.hits = 0
        self.misses = 0

    def _key(self, wav: Path) -> Path:
        st = wav.stat()
        ident = f"{wav.resolve()}|{st.st_size}|{st.st_mtime_ns}|{FEATURE_VERSION}|{self.n_frames}"
        digest = hashlib.sha1(ident.encode()).hexdigest()
        return self.dir / digest[:2] / f"{digest}.npy"

    def features(self, wav: Path) -> np.ndarray:
        key = self._key(wav)
        if key.is_file():
            try:
                feats = np.load(key)
                self.hits += 1
                return feats
            except (OSError, ValueError):
                pass  # a corrupt cache entry is recomputed below
        data, rate = read_wav(wav)
        feats = audio_features(data, rate, self.n_frames)
        self.misses += 1
        with contextlib.suppress(OSError):  # a read-only cache never stops training
            save_npy(key, feats)
        return feats


def default_cache_dir(root: Path) -> Path:
    """``$REGNN_CACHE_DIR``, else ``<root>/.regnn-cache`` if writable, else ``~/.cache/regnn``."""
    env = os.environ.get("REGNN_CACHE_DIR")
    if env:
        return Path(env)
    local = Path(root) / ".regnn-cache"
    if os.access(root, os.W_OK):
        return local
    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "regnn" / digest
