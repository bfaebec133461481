"""Ng et al., "Learning to Listen" (CVPR 2022): VQ-VAE + transformer (Table I, "Ng et al.").

Two stages, as in the original:

1. **VQ-VAE of listener motion.** A 1-D convolutional encoder turns a listener reaction
   ``(T, 25)`` into ``T / 2^downsample`` latent vectors, each is replaced by its nearest entry
   of a learned codebook of ``codes`` vectors (van den Oord et al.: straight-through
   gradient, codebook and commitment losses; unused codes are restarted on encoder outputs),
   and a decoder maps the code sequence back to ``(T, 25)`` through the range head.
2. **Predictor.** A transformer reads the speaker's face and audio features (downsampled to
   the code rate, self-attention encoder) and predicts the listener's code sequence
   autoregressively (causal decoder with cross-attention to the speaker), trained with
   cross-entropy on the codes of the real reaction (teacher forcing).

At inference the code sequence is **sampled** token by token from the predicted categorical
distributions (``temperature``, optional ``top_k``), so the K reactions to one speaker
differ; ``temperature=0`` gives the greedy (deterministic) sequence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from regnn.models.baselines.common import pad_time, speaker_input, to_ranges
from regnn.schema import NUM_ATTRIBUTES

PHASES = ("vq", "prior")


def sinusoid(n: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32)
                    * (-math.log(10000.0) / width))
    enc = torch.zeros(n, width, device=device)
    enc[:, 0::2] = torch.sin(pos * div)
    enc[:, 1::2] = torch.cos(pos * div[: width // 2])
    return enc.to(dtype)


def down_stack(c_in: int, width: int, steps: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv1d(c_in, width, 5, padding=2), nn.GELU()]
    for _ in range(steps):
        layers += [nn.Conv1d(width, width, 4, stride=2, padding=1), nn.GELU(),
                   nn.Conv1d(width, width, 3, padding=1), nn.GELU()]
    return nn.Sequential(*layers)


def up_stack(width: int, steps: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(steps):
        layers += [nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), nn.GELU(),
                   nn.Conv1d(width, width, 3, padding=1), nn.GELU()]
    return nn.Sequential(*layers)


class LearningToListen(nn.Module):
    """VQ-VAE of listener reactions + autoregressive code predictor (Ng et al. 2022)."""

    diverse = True

    def __init__(self, face_dim: int = NUM_ATTRIBUTES, audio_dim: int = 64,
                 use_face: bool = True, use_audio: bool = True, codes: int = 64,
                 code_dim: int = 32, width: int = 64, downsample: int = 3, heads: int = 4,
                 encoder_layers: int = 1, decoder_layers: int = 2, beta: float = 0.25,
                 temperature: float = 1.0, top_k: int = 0) -> None:
        super().__init__()
        if not (use_face or use_audio):
            raise ValueError("Learning to Listen needs the speaker's face or audio (or both)")
        if codes < 2:
            raise ValueError(f"the codebook needs at least 2 codes, got {codes}")
        self.use_face, self.use_audio = use_face, use_audio
        self.codes, self.downsample, self.beta = codes, downsample, beta
        self.temperature, self.top_k, self.width = temperature, top_k, width
        # stage 1: VQ-VAE
        self.vq_enc = nn.Sequential(down_stack(NUM_ATTRIBUTES, width, downsample),
                                    nn.Conv1d(width, code_dim, 1))
        self.codebook = nn.Parameter(torch.randn(codes, code_dim) / math.sqrt(code_dim))
        self.vq_dec = nn.Sequential(nn.Conv1d(code_dim, width, 3, padding=1), nn.GELU(),
                                    up_stack(width, downsample),
                                    nn.Conv1d(width, NUM_ATTRIBUTES, 1))
        self.register_buffer("usage", torch.ones(codes))
        # stage 2: predictor
        in_dim = (face_dim if use_face else 0) + (audio_dim if use_audio else 0)
        self.spk_enc = down_stack(in_dim, width, downsample)
        self.spk_tf = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True,
                                       norm_first=True), encoder_layers,
            enable_nested_tensor=False)
        self.tok = nn.Embedding(codes + 1, width)  # index ``codes`` = begin-of-sequence
        self.dec_tf = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True,
                                       norm_first=True), decoder_layers)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, codes))

    # -- stage 1 --------------------------------------------------------------------------
    def encode(self, listener: torch.Tensor) -> torch.Tensor:
        """``(B, T, 25)`` -> continuous latents ``(B, L, code_dim)``."""
        x, _ = pad_time(listener.transpose(1, 2), 2**self.downsample)
        return self.vq_enc(x).transpose(1, 2)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codebook entries: ``(B, L, d)`` -> indices ``(B, L)``, vectors ``(B, L, d)``."""
        d = (z.pow(2).sum(-1, keepdim=True) - 2 * z @ self.codebook.T
             + self.codebook.pow(2).sum(-1))
        idx = d.argmin(-1)
        return idx, self.codebook[idx]

    def decode_codes(self, idx: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Code indices ``(B, L)`` -> reactions ``(B, n_frames, 25)`` in the REACT ranges."""
        return self._decode(self.codebook[idx], n_frames)

    def _decode(self, zq: torch.Tensor, n_frames: int) -> torch.Tensor:
        y = self.vq_dec(zq.transpose(1, 2))[..., :n_frames]
        return to_ranges(y.transpose(1, 2))

    def code_sequence(self, listener: torch.Tensor) -> torch.Tensor:
        """The code indices ``(B, L)`` of real reactions (the predictor's targets)."""
        return self.quantize(self.encode(listener))[0]

    def _restart_dead_codes(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        with torch.no_grad():
            counts = torch.bincount(idx.flatten(), minlength=self.codes).to(self.usage.dtype)
            self.usage.mul_(0.9).add_(0.1 * counts)
            dead = torch.nonzero(self.usage < 1e-2).flatten()
            if dead.numel():
                flat = z.reshape(-1, z.shape[-1])
                pick = torch.randint(0, flat.shape[0], (dead.numel(),), device=z.device)
                self.codebook.data[dead] = flat[pick]
                self.usage[dead] = 1.0

    def vq_losses(self, listener: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encode(listener)
        idx, zq = self.quantize(z)
        codebook = F.mse_loss(zq, z.detach())
        commit = F.mse_loss(z, zq.detach())
        recon = F.mse_loss(self._decode(z + (zq - z).detach(), listener.shape[1]), listener)
        if self.training:
            self._restart_dead_codes(z.detach(), idx)
        perplexity = torch.exp(-(p := torch.bincount(idx.flatten(), minlength=self.codes)
                                 .float() / idx.numel()).mul((p + 1e-10).log()).sum())
        return {"loss": recon + codebook + self.beta * commit, "recon": recon,
                "codebook": codebook, "commit": commit, "perplexity": perplexity.detach()}

    # -- stage 2 --------------------------------------------------------------------------
    def speaker_memory(self, face: torch.Tensor | None, audio: torch.Tensor | None
                       ) -> torch.Tensor:
        x = speaker_input(face, audio, self.use_face, self.use_audio).transpose(1, 2)
        x, _ = pad_time(x, 2**self.downsample)
        h = self.spk_enc(x).transpose(1, 2)  # (B, L, w)
        return self.spk_tf(h + sinusoid(h.shape[1], self.width, h.device, h.dtype))

    def code_logits(self, memory: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """Next-code logits after each prefix position: ``prefix (B, s)`` -> ``(B, s, codes)``.

        ``prefix`` starts with the begin-of-sequence token ``codes``.
        """
        s = prefix.shape[1]
        h = self.tok(prefix) + sinusoid(s, self.width, memory.device, memory.dtype)
        mask = torch.triu(torch.ones(s, s, dtype=torch.bool, device=memory.device), 1)
        return self.out(self.dec_tf(h, memory, tgt_mask=mask, tgt_is_causal=True))

    def prior_losses(self, face: torch.Tensor | None, audio: torch.Tensor | None,
                     listener: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = self.code_sequence(listener)  # (B, L)
        memory = self.speaker_memory(face, audio)
        bos = torch.full_like(target[:, :1], self.codes)
        logits = self.code_logits(memory, torch.cat([bos, target[:, :-1]], 1))
        ce = F.cross_entropy(logits.reshape(-1, self.codes), target.reshape(-1))
        acc = (logits.argmax(-1) == target).float().mean()
        return {"loss": ce, "cross_entropy": ce, "accuracy": acc.detach()}

    def losses(self, face: torch.Tensor | None, audio: torch.Tensor | None,
               listener: torch.Tensor, phase: str = "vq") -> dict[str, torch.Tensor]:
        """Stage ``"vq"`` (VQ-VAE) or ``"prior"`` (code predictor on the frozen VQ-VAE's codes)."""
        if phase == "vq":
            return self.vq_losses(listener)
        if phase == "prior":
            return self.prior_losses(face, audio, listener)
        raise ValueError(f"unknown Learning-to-Listen phase {phase!r}; expected one of {PHASES}")

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """The parameters trained in one phase (the other phase's stay frozen)."""
        if phase == "vq":
            return [*self.vq_enc.parameters(), self.codebook, *self.vq_dec.parameters()]
        return [*self.spk_enc.parameters(), *self.spk_tf.parameters(), *self.tok.parameters(),
                *self.dec_tf.parameters(), *self.out.parameters()]

    # -- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def sample_codes(self, memory: torch.Tensor, length: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        B = memory.shape[0]
        seq = torch.full((B, 1), self.codes, dtype=torch.long, device=memory.device)
        for _ in range(length):
            logits = self.code_logits(memory, seq)[:, -1]
            if self.temperature <= 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / self.temperature
                if 0 < self.top_k < self.codes:
                    kth = logits.topk(self.top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            seq = torch.cat([seq, nxt], 1)
        return seq[:, 1:]

    @torch.no_grad()
    def generate(self, face: torch.Tensor | None, audio: torch.Tensor | None = None,
                 k: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(N, T, F)`` speaker -> ``(N, K, T, 25)``: K sampled code sequences, decoded."""
        ref = face if face is not None else audio
        N, T = ref.shape[:2]
        memory = self.speaker_memory(face, audio)  # (N, L, w)
        L = memory.shape[1]
        memory = memory.repeat_interleave(k, dim=0)
        codes = self.sample_codes(memory, L, generator)
        return self.decode_codes(codes, T).reshape(N, k, T, NUM_ATTRIBUTES)
