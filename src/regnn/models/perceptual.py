"""Perceptual processor: per-frame speaker face and audio features fused by attention.

Paper Sec. IV-A, Eq. (3): ``Ā = Enc_A(A)``, ``F̄ = Enc_F(F)``, then "aligns and combines them
... based on the same attention-based strategy introduced in [35]" (the Multimodal
Transformer of Tsai et al.). Here ``Enc_F`` and ``Enc_A`` are per-frame linear projections of
the given features (the 25 facial attributes or 3DMM coefficients; a log-mel frame) plus a
sinusoidal time encoding, fusion is ``cross_layers`` cross-modal blocks in which face queries
attend to audio keys/values, followed by ``self_layers`` self-attention blocks.

Every attention accepts an ``attn_mask`` (boolean, ``True`` = may attend, shape ``(T, T)`` or
broadcastable to ``(B, heads, T, T)``) or ``causal=True``, so an online (causal) variant is a
mask, not a new network. Either modality can be switched off: face-only skips the
cross-modal blocks, audio-only uses the audio stream as the query stream.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from regnn.errors import ConfigError


def sinusoidal_encoding(n_frames: int, width: int, device: torch.device | None = None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``(T, width)`` sine/cosine time encoding of Vaswani et al."""
    pos = torch.arange(n_frames, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32)
                    * (-math.log(10000.0) / width))
    enc = torch.zeros(n_frames, width, device=device, dtype=torch.float32)
    enc[:, 0::2] = torch.sin(pos * div)
    enc[:, 1::2] = torch.cos(pos * div[: width // 2])
    return enc.to(dtype)


def causal_mask(n_frames: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean ``(T, T)`` mask letting frame t attend to frames ``<= t`` only."""
    return torch.ones(n_frames, n_frames, dtype=torch.bool, device=device).tril()


class Attention(nn.Module):
    """Multi-head scaled dot-product attention (queries from ``x``, keys/values from ``ctx``)."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(f"fusion width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, attn_mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        B, T, W = x.shape
        h = self.heads
        q = self.q(x).view(B, T, h, W // h).transpose(1, 2)
        # k and v as views of the one (B, S, 2, h, W/h) product: in backward their gradients
        # are stacked straight into that layout (a permute here made backward copy twice)
        k, v = self.kv(ctx).view(B, ctx.shape[1], 2, h, W // h).unbind(2)
        y = F.scaled_dot_product_attention(
            q, k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask,
            is_causal=causal and attn_mask is None,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(y.transpose(1, 2).reshape(B, T, W))


class FusionBlock(nn.Module):
    """Pre-norm transformer block; cross-modal when a context stream is given."""

    def __init__(self, width: int, heads: int, ffn_mult: int = 2, dropout: float = 0.0,
                 cross: bool = False) -> None:
        super().__init__()
        self.cross = cross
        self.norm_q = nn.LayerNorm(width)
        self.norm_ctx = nn.LayerNorm(width) if cross else None
        self.attn = Attention(width, heads, dropout)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = nn.Sequential(
            nn.Linear(width, ffn_mult * width), nn.GELU(), nn.Linear(ffn_mult * width, width),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        q = self.norm_q(x)
        c = self.norm_ctx(ctx) if self.cross and ctx is not None else q
        x = x + self.drop(self.attn(q, c, attn_mask=attn_mask, causal=causal))
        return x + self.drop(self.ff(self.norm_ff(x)))


class PerceptualProcessor(nn.Module):
    """Speaker encoder and cross-modal fusion (paper Eq. 3 and the fusion of Sec. IV-A).

    ``forward(face (B, T, face_dim) | None, audio (B, T, audio_dim) | None) -> (B, T, width)``.
    """

    def __init__(self, face_dim: int = 25, audio_dim: int = 64, width: int = 128,
                 heads: int = 4, cross_layers: int = 1, self_layers: int = 1,
                 ffn_mult: int = 2, dropout: float = 0.0, use_face: bool = True,
                 use_audio: bool = True) -> None:
        super().__init__()
        if not (use_face or use_audio):
            raise ConfigError("the perceptual processor needs at least one modality "
                              "(use_face or use_audio)")
        self.use_face, self.use_audio, self.width = use_face, use_audio, width
        self.face_proj = nn.Linear(face_dim, width) if use_face else None
        self.audio_proj = nn.Linear(audio_dim, width) if use_audio else None
        both = use_face and use_audio
        self.cross = nn.ModuleList(
            FusionBlock(width, heads, ffn_mult, dropout, cross=True)
            for _ in range(cross_layers if both else 0)
        )
        self.layers = nn.ModuleList(
            FusionBlock(width, heads, ffn_mult, dropout) for _ in range(self_layers)
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, face: torch.Tensor | None, audio: torch.Tensor | None,
                attn_mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        f = a = None
        if self.use_face:
            if face is None:
                raise ConfigError("this model uses the speaker's face but no face input was given")
            f = self.face_proj(face)
        if self.use_audio:
            if audio is None:
                raise ConfigError("this model uses the speaker's audio but no audio was given")
            a = self.audio_proj(audio)
        ref = f if f is not None else a
        enc = sinusoidal_encoding(ref.shape[1], self.width, ref.device, ref.dtype)
        if a is not None:
            a = a + enc
        if f is not None:
            f = f + enc
            x = f
            for block in self.cross:
                x = block(x, a, attn_mask=attn_mask, causal=causal)
        else:
            x = a
        for block in self.layers:
            x = block(x, attn_mask=attn_mask, causal=causal)
        return self.norm(x)
