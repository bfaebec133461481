"""The prosody audio encoder (``model.audio_encoder = "prosody"``): what it reads from the
log-mel frames, its causality in the online model, and configs saved before the option."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regnn.config import RunConfig, config_from_dict, merge
from regnn.errors import ConfigError
from regnn.models.perceptual import PerceptualProcessor, ProsodyAudioEncoder


def _logmel(power: np.ndarray) -> torch.Tensor:
    return torch.log(torch.as_tensor(power, dtype=torch.float32) + 1e-6)


def test_prosody_reads_loudness_and_brightness():
    enc = ProsodyAudioEncoder(64, 16)
    flat = np.ones((1, 4, 64))
    loud = _logmel(10 * flat)
    quiet = _logmel(flat)
    tilt = np.ones((1, 4, 64))
    tilt[..., 40:] = 20.0  # energy in the high bands: brighter
    p_loud, p_quiet, p_bright = (enc.prosody(x) for x in (loud, quiet, _logmel(tilt)))
    assert torch.all(p_loud[..., 0] > p_quiet[..., 0])  # log energy
    torch.testing.assert_close(p_loud[..., 1], p_quiet[..., 1])  # same shape, same centroid
    assert torch.all(p_bright[..., 1] > p_quiet[..., 1] + 0.1)  # centroid moves up
    steps = torch.cat([quiet, loud], dim=1)
    delta = enc.prosody(steps)[0, :, 3]
    assert delta[4] > 0 and torch.all(delta[[0, 1, 2, 3, 5, 6, 7]] == 0)  # change at the step


def test_causal_encoder_never_sees_later_frames():
    torch.manual_seed(0)
    p = PerceptualProcessor(width=32, heads=2, audio_encoder="prosody", causal=True)
    a, f = torch.randn(2, 40, 64) * 3 - 5, torch.rand(2, 40, 25)
    later = a.clone()
    later[:, 25:] += 2.0
    mask = torch.ones(40, 40).tril().bool()
    out, out2 = p(f, a, attn_mask=mask), p(f, later, attn_mask=mask)
    torch.testing.assert_close(out[:, :25], out2[:, :25])
    assert not torch.allclose(out[:, 25:], out2[:, 25:])
    offline = PerceptualProcessor(width=32, heads=2, audio_encoder="prosody")
    assert not torch.allclose(offline.audio_proj(a)[:, :25], offline.audio_proj(later)[:, :25])


def test_audio_encoder_option_is_checked_and_old_configs_keep_the_linear_one():
    with pytest.raises(ConfigError, match="model.audio_encoder must be"):
        merge(RunConfig(), {"model": {"audio_encoder": "wav2vec"}})
    saved = RunConfig().to_dict()
    saved["model"].pop("audio_encoder")  # a run saved before the option existed
    assert config_from_dict(saved).model.audio_encoder == "linear"
