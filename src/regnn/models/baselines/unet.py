"""A 4-level 1-D UNet from the speaker sequence to the reaction (paper Table I, "UNet").

Ronneberger et al.'s encoder-decoder with skip connections, in one dimension (time): the
speaker sequence ``(T, F)`` (the 25 attributes, optionally with the audio features) is encoded
by ``levels`` blocks that each halve the frame rate, decoded by ``levels`` blocks that double
it and concatenate the encoder's features of the same rate, and mapped to the 25 attributes
by the range head. Trained with an MSE to the one ground-truth reaction.

It is **deterministic**: the K reactions it returns for one speaker are identical copies, so
its FRDiv is 0 (the paper reports 0.0 as well).
"""

from __future__ import annotations

import torch
from torch import nn

from regnn.models.baselines.common import pad_time, speaker_input, to_ranges
from regnn.schema import NUM_ATTRIBUTES


def conv_block(c_in: int, c_out: int, kernel: int = 5) -> nn.Sequential:
    pad = kernel // 2
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, padding=pad), nn.GroupNorm(1, c_out), nn.GELU(),
        nn.Conv1d(c_out, c_out, kernel, padding=pad), nn.GroupNorm(1, c_out), nn.GELU(),
    )


class UNet1D(nn.Module):
    """``levels``-level 1-D UNet: ``(B, T, F) -> (B, T, 25)`` (MSE to the ground truth)."""

    diverse = False

    def __init__(self, face_dim: int = NUM_ATTRIBUTES, audio_dim: int = 64,
                 use_face: bool = True, use_audio: bool = False, levels: int = 4,
                 base: int = 32, max_width: int = 128) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"the UNet needs at least one level, got {levels}")
        if not (use_face or use_audio):
            raise ValueError("the UNet needs the speaker's face or audio (or both)")
        self.use_face, self.use_audio, self.levels = use_face, use_audio, levels
        in_dim = (face_dim if use_face else 0) + (audio_dim if use_audio else 0)
        widths = [min(base * 2**i, max_width) for i in range(levels + 1)]
        self.stem = conv_block(in_dim, widths[0])
        self.down = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], 4, stride=2, padding=1) for i in range(levels)
        )
        self.enc = nn.ModuleList(conv_block(widths[i + 1], widths[i + 1]) for i in range(levels))
        self.up = nn.ModuleList(
            nn.ConvTranspose1d(widths[i + 1], widths[i], 4, stride=2, padding=1)
            for i in reversed(range(levels))
        )
        self.dec = nn.ModuleList(
            conv_block(2 * widths[i], widths[i]) for i in reversed(range(levels))
        )
        self.head = nn.Conv1d(widths[0], NUM_ATTRIBUTES, 1)

    def forward(self, face: torch.Tensor | None, audio: torch.Tensor | None = None
                ) -> torch.Tensor:
        x = speaker_input(face, audio, self.use_face, self.use_audio).transpose(1, 2)
        x, t = pad_time(x, 2**self.levels)
        h = self.stem(x)
        skips = [h]
        for down, enc in zip(self.down, self.enc):
            h = enc(down(h))
            skips.append(h)
        skips.pop()  # the bottleneck itself
        for up, dec in zip(self.up, self.dec):
            h = dec(torch.cat([up(h), skips.pop()], dim=1))
        return to_ranges(self.head(h)[..., :t].transpose(1, 2))

    def losses(self, face: torch.Tensor | None, audio: torch.Tensor | None,
               listener: torch.Tensor) -> dict[str, torch.Tensor]:
        mse = ((self(face, audio) - listener) ** 2).mean()
        return {"loss": mse, "mse": mse}

    @torch.no_grad()
    def generate(self, face: torch.Tensor | None, audio: torch.Tensor | None = None,
                 k: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(N, K, T, 25)``: the one deterministic reaction repeated K times."""
        y = self(face, audio)
        return y[:, None].expand(-1, k, -1, -1).contiguous()
