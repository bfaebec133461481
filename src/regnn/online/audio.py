"""Streaming log-mel features: the per-frame audio features of :mod:`regnn.data.audio`, computed
incrementally from audio chunks as they arrive.

Offline, :func:`regnn.data.audio.audio_features` resamples a whole clip to 16 kHz and runs
``librosa.feature.melspectrogram`` (1024-sample Hann window, hop 640 = one video frame,
``center=True`` with zero padding, 64 Slaney mel bands, power 2), then ``log(mel + 1e-6)``.
Frame ``t`` is centred on sample ``640 t``, so it needs 16 kHz samples up to ``640 t + 512``:
it can be computed as soon as the audio of video frame ``t`` (samples ``[640 t, 640 (t+1))``)
has arrived. :class:`StreamingLogMel` computes exactly those frames as the samples come in
(same window, same filter bank, same zero padding at the start), so for 16 kHz input its frames
equal the offline ones to float rounding. Other rates are resampled on the fly with soxr's
streaming resampler (the same ``soxr`` HQ filter librosa uses offline; the streaming and
whole-clip resamplers differ only in edge handling, so features agree closely, not bitwise).
"""

from __future__ import annotations

import functools

import numpy as np

from regnn.data.audio import HOP, N_FFT, N_MELS, SAMPLE_RATE

_LOG_FLOOR = 1e-6


@functools.cache
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


@functools.cache
def _hann() -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window("hann", N_FFT, fftbins=True).astype(np.float32)


class StreamingLogMel:
    """Incremental 64-band log-mel frames (one per 40 ms video frame) from audio chunks.

    >>> ex = StreamingLogMel(44_100)                               # doctest: +SKIP
    >>> feats = ex.push(chunk)        # (n_new_frames, 64) float32, possibly 0 frames

    ``push`` takes mono ``(n,)`` or ``(n, channels)`` samples (channels are averaged) and
    returns the frames that became computable. ``frames`` counts the frames returned so far.
    ``push`` is :meth:`add` (buffer the samples) and :meth:`drain` (compute the frames they
    complete); a stream calls them apart to compute the frames of several pushes in one FFT
    call when it needs them (:meth:`pending` counts the frames computable but not computed).
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self._resampler = None
        if self.sample_rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1,
                                                  dtype="float32", quality="HQ")
        self._mel = _mel_basis()
        self._window = _hann()
        # buffer of 16 kHz samples; index 0 of the buffer is absolute sample `_offset`
        self._buf = np.zeros(0, dtype=np.float32)
        self._offset = 0
        self._received = 0  # 16 kHz samples received so far
        self.frames = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        self.add(samples)
        return self.drain()

    def add(self, samples: np.ndarray) -> None:
        """Buffer samples (resampled to 16 kHz) without computing frames."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        elif x.ndim != 1:
            raise ValueError(f"audio samples must be 1-D or (n, channels), got shape {x.shape}")
        if self._resampler is not None and x.size:
            x = self._resampler.resample_chunk(x, last=False).astype(np.float32, copy=False)
        if x.size:
            self._buf = np.concatenate([self._buf, x])
            self._received += x.size

    def pending(self) -> int:
        """Frames computable from the samples received but not yet returned."""
        return max(self.available() - self.frames, 0)

    def available(self) -> int:
        """Frames computable from the samples received so far (returned or not)."""
        need = self._received - N_FFT // 2  # frame t needs samples < HOP t + N_FFT/2
        return 0 if need < 0 else need // HOP + 1

    def frames_after(self, n_samples: int) -> int:
        """An upper bound of the frames that ``n_samples`` more samples make computable
        (beyond :meth:`available`)."""
        n16 = -(-int(n_samples) * SAMPLE_RATE // self.sample_rate) + 1
        need = self._received + n16 - N_FFT // 2
        return max(0, (0 if need < 0 else need // HOP + 1) - self.available())

    def drain(self) -> np.ndarray:
        """The frames computable and not yet returned ``(n, 64)``, in one FFT call."""
        n_new = self.available() - self.frames
        if n_new <= 0:
            return np.zeros((0, N_MELS), dtype=np.float32)
        half = N_FFT // 2
        out = np.empty((n_new, N_FFT), dtype=np.float32)
        for j in range(n_new):
            t = self.frames + j
            start = HOP * t - half - self._offset  # may be negative at the clip start
            seg = out[j]
            if start >= 0:
                seg[:] = self._buf[start:start + N_FFT]
            else:
                seg[:-start] = 0.0  # librosa's center=True zero padding
                seg[-start:] = self._buf[:N_FFT + start]
        spec = np.fft.rfft(out * self._window, axis=1)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        feats = np.log(power @ self._mel.T + _LOG_FLOOR).astype(np.float32)
        self.frames += n_new
        # keep only what the next frame needs
        keep_from = HOP * self.frames - half - self._offset
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._offset += keep_from
        return feats
