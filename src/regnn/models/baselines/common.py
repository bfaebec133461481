"""Pieces shared by the comparison systems: an output head into the REACT ranges, padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regnn.schema import AFFECT_SLICE, AU_SLICE, EXPRESSION_SLICE, NUM_ATTRIBUTES


def to_ranges(raw: torch.Tensor) -> torch.Tensor:
    """Map unconstrained ``(..., 25)`` outputs into the attribute ranges of ``react-protocol.md``.

    AUs: sigmoid, in (0, 1); valence/arousal: tanh, in (-1, 1); expression probabilities:
    softmax, on the simplex. Every baseline ends with this head, so its reactions respect the
    ranges by construction (``schema.clip_to_ranges`` is then a no-op up to rounding).
    """
    if raw.shape[-1] != NUM_ATTRIBUTES:
        raise ValueError(f"last axis must have {NUM_ATTRIBUTES} values, "
                         f"got shape {tuple(raw.shape)}")
    return torch.cat([
        torch.sigmoid(raw[..., AU_SLICE]),
        torch.tanh(raw[..., AFFECT_SLICE]),
        torch.softmax(raw[..., EXPRESSION_SLICE], dim=-1),
    ], dim=-1)


def pad_time(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int]:
    """Replicate-pad ``x (B, C, T)`` on the right so that ``T`` is a multiple of ``multiple``.

    Returns the padded tensor and the original length (crop the output back to it).
    """
    t = x.shape[-1]
    extra = (-t) % multiple
    if extra:
        x = F.pad(x, (0, extra), mode="replicate")
    return x, t


def speaker_input(face: torch.Tensor | None, audio: torch.Tensor | None,
                  use_face: bool, use_audio: bool) -> torch.Tensor:
    """Concatenate the speaker streams a system uses into ``(B, T, F)``; clear error if missing."""
    parts = []
    if use_face:
        if face is None:
            raise ValueError("this system uses the speaker's face attributes but none were given")
        parts.append(face)
    if use_audio:
        if audio is None:
            raise ValueError("this system uses the speaker's audio features but none were given")
        parts.append(audio)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
