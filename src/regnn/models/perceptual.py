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

#: ``model.audio_encoder``: one linear map per log-mel frame (the paper's reading of Eq. 3), or
#: :class:`ProsodyAudioEncoder` (prosody features and temporal context)
AUDIO_ENCODERS = ("linear", "prosody")


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


class ProsodyAudioEncoder(nn.Module):
    """``Enc_A`` of Eq. (3) with prosody and temporal context (``model.audio_encoder =
    "prosody"``): log-mel frames ``(B, T, n_mels)`` -> ``(B, T, width)``.

    Per frame, beside the ``n_mels`` bands: the log energy (``logsumexp`` over the bands: the
    loudness), the spectral centroid and spread (first two moments of the band index under
    ``softmax`` of the bands: brightness and pitch-driven shifts of the harmonics) and the
    frame-to-frame change of the three (speaking rate shows as their modulation). A linear map
    to ``width`` is followed by ``layers`` residual temporal convolutions (kernel ``kernel``,
    GELU), causal (left padding only) in the online model, so a frame's code sees
    ``layers * (kernel - 1)`` neighbouring frames instead of itself alone.
    """

    def __init__(self, n_mels: int, width: int, layers: int = 2, kernel: int = 5,
                 causal: bool = False) -> None:
        super().__init__()
        self.causal, self.kernel = causal, kernel
        self.register_buffer("bands", torch.linspace(0.0, 1.0, n_mels), persistent=False)
        self.proj = nn.Linear(n_mels + 6, width)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, kernel) for _ in range(layers))

    def prosody(self, logmel: torch.Tensor) -> torch.Tensor:
        """``(B, T, 6)``: log energy, centroid, spread and their frame-to-frame changes."""
        energy = torch.logsumexp(logmel, dim=-1, keepdim=True)
        w = torch.softmax(logmel, dim=-1)
        centroid = (w * self.bands).sum(-1, keepdim=True)
        spread = (w * (self.bands - centroid) ** 2).sum(-1, keepdim=True).clamp_min(0).sqrt()
        p = torch.cat([energy / 10.0, centroid, spread], dim=-1)
        delta = torch.diff(p, dim=1, prepend=p[:, :1])
        return torch.cat([p, delta], dim=-1)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.proj(torch.cat([logmel, self.prosody(logmel)], dim=-1)).transpose(1, 2)
        k = self.kernel - 1
        pad = (k, 0) if self.causal else (k // 2, k - k // 2)
        for conv in self.convs:
            x = x + conv(F.gelu(F.pad(x, pad, mode="replicate")))
        return x.transpose(1, 2)


class PerceptualProcessor(nn.Module):
    """Speaker encoder and cross-modal fusion (paper Eq. 3 and the fusion of Sec. IV-A).

    ``forward(face (B, T, face_dim) | None, audio (B, T, audio_dim) | None) -> (B, T, width)``.
    """

    def __init__(self, face_dim: int = 25, audio_dim: int = 64, width: int = 128,
                 heads: int = 4, cross_layers: int = 1, self_layers: int = 1,
                 ffn_mult: int = 2, dropout: float = 0.0, use_face: bool = True,
                 use_audio: bool = True, audio_encoder: str = "linear",
                 causal: bool = False) -> None:
        super().__init__()
        if not (use_face or use_audio):
            raise ConfigError("the perceptual processor needs at least one modality "
                              "(use_face or use_audio)")
        self.use_face, self.use_audio, self.width = use_face, use_audio, width
        self.face_proj = nn.Linear(face_dim, width) if use_face else None
        if audio_encoder not in AUDIO_ENCODERS:
            raise ConfigError(f"model.audio_encoder must be one of {', '.join(AUDIO_ENCODERS)}, "
                              f"got {audio_encoder!r}")
        self.audio_proj: nn.Module | None = None
        if use_audio:
            self.audio_proj = (nn.Linear(audio_dim, width) if audio_encoder == "linear" else
                               ProsodyAudioEncoder(audio_dim, width, causal=causal))
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
