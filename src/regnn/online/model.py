r"""Online REGNN: the causal, chunk-by-chunk variant of the model (REACT task 2).

The offline model (:class:`regnn.models.regnn.REGNN`, paper Sec. IV, Eqs. 3-15) sees a whole
window of ``D`` speaker frames and decodes the listener's reaction *for the same frames*; its
MEFL edges (Sec. IV-A) and motor attention (Eqs. 10-13) mix all frames of the window, so no
frame of the output is causal. The online variant keeps the three processors unchanged and
changes **what a window means**:

* **Causal windows.** At speaker frame ``t = c·H`` (chunk ``c``, hop ``H``) the perceptual and
  cognitive processors (Eqs. 3-4, with causally masked attention) see the speaker's frames
  ``t-D+1 .. t`` only, and the window's graph stands for the *listener's* frames
  ``t-D+H .. t+H-1``: the listener is modelled ``H-1`` frames behind the speaker. The motor
  inverse (Eq. 5) decodes that window and its last ``H`` frames are the new chunk
  ``t .. t+H-1``. Every listener frame ``τ`` therefore depends on speaker frames ``<= τ``
  (strict frame-level causality; up to ``H-1`` frames of lag are the price, 280 ms for
  ``H = 8``, within a listener's natural reaction delay).
* **Training.** AFRDL (Eqs. 6-9) on the same pairs: a training window spans
  ``L = D + H - 1`` frames; the speaker input is its first ``D`` frames and the appropriate
  listener reactions (Eq. 6's ``g_m``) are its last ``D`` frames. Stored in the run config as
  ``model.window = D``, ``model.hop = H`` and ``model.stride = H`` (``regnn train --online
  --window D --hop H`` writes them); the training data cut windows of ``model.span = L``.
* **Continuity across chunks** (carried state, per reaction ``k``):

  1. *Latent noise.* The sample ``Ẑp + ε`` (Eq. 5) uses one noise value per (node, absolute
     listener frame): the ``D - H`` frames a window shares with the previous one reuse the
     previous window's noise, only the ``H`` new frames draw new noise. Reaction ``k`` keeps
     its identity over time instead of being re-drawn every chunk.
  2. *Boundary alignment.* The decoded window also covers frame ``t-1``, which was already
     emitted. The difference ``δ = emitted[t-1] - window[t-1]`` is added to the new chunk with
     a linear fade ``1 - (j+1)/(H+1)`` (``j = 0..H-1``), so the step from ``t-1`` to ``t`` is the
     window's own step ``window[t] - window[t-1]`` (minus ``δ/(H+1)``), like any interior step.

``generate`` (the offline path of the online model) feeds a whole clip through the same
stream, so offline and streaming outputs are identical for the same input and seed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from regnn.config import GenerateConfig, ModelConfig
from regnn.errors import ConfigError
from regnn.models.invertible import InverseInfo
from regnn.models.module import ReactionModule
from regnn.models.regnn import REGNN, ar1_filter, rng_device, sample_noise
from regnn.online.stream import ChunkedStream, ChunkRequest
from regnn.schema import NUM_ATTRIBUTES, clip_to_ranges

DEFAULT_WINDOW = 16  # D: speaker frames a chunk sees (0.64 s)
DEFAULT_HOP = 8  # H: listener frames per chunk (0.32 s), as the REACT online baselines


def online_overrides(window: int = DEFAULT_WINDOW, hop: int = DEFAULT_HOP) -> dict[str, Any]:
    """Config overrides that make a run the online model with graph window ``D``, hop ``H``."""
    if hop < 1:
        raise ConfigError(f"--hop must be >= 1, got {hop}")
    if window <= hop:
        raise ConfigError(f"--window ({window}) must be larger than --hop ({hop}): the window "
                          "overlaps the previous chunk by window - hop frames, which carry the "
                          "state that keeps chunks continuous")
    return {"model": {"name": "regnn-online", "causal": True, "window": window, "hop": hop,
                      "stride": hop}}


class OnlineREGNN(nn.Module):
    """Causal REGNN (module docstring): paper Eqs. 3-4 on past speaker frames, Eq. 5 per chunk.

    ``cfg.window`` is the graph window ``D``, ``cfg.hop`` the hop ``H``; training windows span
    ``cfg.span = D + H - 1`` frames.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.hop < 1:
            raise ConfigError("online model: model.hop must be >= 1 (the listener frames per "
                              "chunk); use regnn train --online --window D --hop H")
        self.hop = cfg.hop
        self.graph = cfg.window
        self.cfg = cfg
        self.net = REGNN(dataclasses.replace(cfg, stride=self.hop, causal=True))

    @property
    def lag(self) -> int:
        return self.hop - 1

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, edges: torch.Tensor, adjacency: torch.Tensor
               ) -> tuple[torch.Tensor, InverseInfo]:
        """Motor inverse (Eq. 5 by Eq. 14): the offline model's, whose γ is cached while the
        weights stay unchanged and whose certificate comes free from the last step."""
        return self.net.decode(latents, edges, adjacency)

    def losses(self, face: torch.Tensor | None, audio: torch.Tensor | None,
               reactions: torch.Tensor, valid: torch.Tensor,
               groups: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """AFRDL losses on ``L``-frame windows: speaker frames ``[:D]``, listeners ``[H-1:]``."""
        D, lag = self.graph, self.lag
        return self.net.losses(None if face is None else face[:, :D],
                               None if audio is None else audio[:, :D],
                               reactions[:, :, lag:], valid, groups)

    def stream(self, k: int = 1, seed: int = 0, sigma: float | None = None,
               noise: str | None = None, generator: torch.Generator | None = None,
               smooth: bool = True, postprocess: bool = True,
               noise_scale: float | None = None) -> REGNNStream:
        """A :class:`REGNNStream` (:func:`open_stream`); unset sampling settings take the
        defaults of :class:`regnn.config.GenerateConfig`."""
        return open_stream(self, k, seed, sigma=sigma, noise=noise, noise_scale=noise_scale,
                           generator=generator, smooth=smooth, postprocess=postprocess)

    @torch.no_grad()
    def generate(self, face: torch.Tensor | np.ndarray | None,
                 audio: torch.Tensor | np.ndarray | None, k: int = 10,
                 sigma: float | None = None, noise: str | None = None,
                 generator: torch.Generator | None = None, seed: int = 0,
                 smooth: bool = True, postprocess: bool = True,
                 noise_scale: float | None = None) -> tuple[np.ndarray, InverseInfo]:
        """Whole clips ``(N, T, F)`` -> ``(N, K, T, 25)`` through the streaming path.

        Items draw their noise one after the other from ``generator`` (or from ``seed``).
        """
        ref = face if face is not None else audio
        if ref is None:
            raise ConfigError("generate needs the speaker's face or audio features")
        g = generator if generator is not None else torch.Generator().manual_seed(seed)
        outs, info = [], InverseInfo()
        for i in range(ref.shape[0]):
            s = self.stream(k, sigma=sigma, noise=noise, generator=g, smooth=smooth,
                            postprocess=postprocess, noise_scale=noise_scale)
            f = _np(face[i]) if face is not None else np.zeros((ref.shape[1], s.face_dim),
                                                                np.float32)
            a = _np(audio[i]) if (audio is not None and s.uses_audio) else None
            outs.append(s.push_features(f, a))
            info = info.merge(s.inverse_info)
        return np.stack(outs), info


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


#: Most chunk windows one batched forward pass takes (:meth:`REGNNStream.compute_chunks`).
MAX_BATCH = 128


class REGNNStream(ChunkedStream):
    """:class:`~regnn.online.stream.ReactionStream` of an :class:`OnlineREGNN` (K reactions).

    Carried state per reaction: the latent noise of the ``D - H`` frames shared with the next
    window and the last emitted frame (see the module docstring). ``smooth=False`` turns the
    boundary alignment off (for the ablation in the tests); ``postprocess`` clips to the
    attribute ranges and renormalises the expression probabilities of the emitted frames.
    """

    def __init__(self, model: OnlineREGNN, k: int = 1,
                 sampling: GenerateConfig | None = None, seed: int = 0,
                 generator: torch.Generator | None = None, smooth: bool = True,
                 postprocess: bool = True) -> None:
        if not isinstance(model, OnlineREGNN):
            raise ConfigError(f"a REGNN stream needs an online model (regnn train --online), "
                              f"got {type(model).__name__}")
        sampling = GenerateConfig() if sampling is None else sampling
        cfg = model.net.cfg
        super().__init__(k, model.graph, model.hop, cfg.face_dim,
                         cfg.audio_dim if cfg.use_audio else 0)
        self.model, self.sigma, self.noise = model, float(sampling.sigma), sampling.noise
        self.noise_scale = float(sampling.noise_scale)
        self.use_face = cfg.use_face
        self.smooth, self.postprocess = smooth, postprocess
        self.generator = generator if generator is not None else \
            torch.Generator().manual_seed(int(seed))
        self.inverse_info = InverseInfo()
        # reaction j's place in the mixture (stratified, as offline): at the first chunk it
        # takes the component whose cumulative weight interval holds u_j, and keeps it (the
        # training makes a component follow one kind of reaction through time)
        self._u = (torch.arange(k, dtype=torch.float64) + torch.rand(
            k, generator=self.generator, dtype=torch.float64,
            device=rng_device(self.generator)).cpu()) / k
        self._pick: torch.Tensor | None = None
        self._ar: torch.Tensor | None = None  # (K, I) last value of the AR(1) "residual" noise
        self._eps: torch.Tensor | None = None  # (K, I, D) noise of the current window frames
        self._last: np.ndarray | None = None  # (K, 25) last emitted frame, before clipping
        H = self.hop
        self._fade = (1.0 - np.arange(1, H + 1, dtype=np.float32) / (H + 1))[None, :, None]

    @property
    def device(self) -> torch.device:
        """Where the model computes (the noise is drawn on the CPU, so a seed gives the same
        reactions on any device)."""
        return next(self.model.parameters()).device

    def describe(self) -> dict:
        return {**super().describe(), "sigma": self.sigma, "lag": self.model.lag}

    def _new_noise(self, frames: int) -> torch.Tensor:
        """``(K, I, frames)`` noise of the next frames for the noise kinds other than
        "residual" (:func:`~regnn.models.regnn.sample_noise`, bounded per chunk; "residual"
        noise is drawn by :meth:`_residual_noise`)."""
        return sample_noise((self.k, NUM_ATTRIBUTES, frames), self.sigma, self.noise,
                            self.generator, torch.device("cpu"), reduce_dims=(1, 2))

    @staticmethod
    def _residual_noise(streams: list[REGNNStream], frames: int, std: torch.Tensor,
                        rho: torch.Tensor) -> torch.Tensor:
        """``(S, K, I, frames)``: each stream's next "residual" noise, the offline model's
        :func:`~regnn.models.regnn.ar1_filter` continued from the stream's last value, its
        white noise drawn from its own generator and the filters of all streams run as one
        (the same float64 arithmetic per element as one stream alone, so batching changes
        nothing). The streams are all at their first window or all past it."""
        w = torch.stack([torch.randn((s.k, NUM_ATTRIBUTES, frames), generator=s.generator,
                                     device=rng_device(s.generator)).cpu() for s in streams])
        prev = [s._ar for s in streams]
        fresh = prev[0] is None
        out = ar1_filter(w.double().numpy(), rho.double().numpy(),
                         None if fresh else np.stack(prev))  # type: ignore[arg-type]
        for s, o in zip(streams, out):
            s._ar = o[..., -1]
        scale = torch.stack([std * s.noise_scale for s in streams]).double()  # (S, I)
        return (torch.from_numpy(out) * scale[:, None, :, None]).float()

    def _advance_noise(self) -> torch.Tensor:
        """This stream's noise of its next window ``(K, I, D)``: :meth:`_advance_noise_many`
        of itself alone."""
        return self._advance_noise_many([self])[0]

    @staticmethod
    def _advance_noise_many(streams: list[REGNNStream]) -> torch.Tensor:
        """``(S, K, I, D)``: each stream's noise of its next window (streams of one model and
        K): the ``D - H`` frames shared with its previous window kept, ``H`` new ones drawn
        (``D`` at its first window). The "residual" noise of the streams that draw the same
        number of frames is drawn and filtered together (:meth:`_residual_noise`)."""
        first = streams[0]
        D, H = first.context, first.hop
        frames = [D if s._eps is None else H for s in streams]  # before any stream advances
        new: list[torch.Tensor | None] = [None] * len(streams)
        residual = [i for i, s in enumerate(streams) if s.noise == "residual"]
        if residual:
            std, rho = (v.cpu() for v in first.model.net.residual_noise())
            for f in sorted({frames[i] for i in residual}):
                idx = [i for i in residual if frames[i] == f]
                drawn = REGNNStream._residual_noise([streams[i] for i in idx], f, std, rho)
                for i, n in zip(idx, drawn):
                    new[i] = n
        for s, n, f in zip(streams, new, frames):
            n = s._new_noise(f) if n is None else n
            s._eps = n if s._eps is None else torch.cat([s._eps[:, :, H:], n], dim=2)
        return torch.stack([s._eps for s in streams])  # type: ignore[misc]

    def _chunk(self, face: np.ndarray, audio: np.ndarray | None, t: int) -> np.ndarray:
        return self.compute_chunks([(self, (face, audio, t))])[0]

    @classmethod
    def compute_chunks(cls, items: list[tuple[ChunkedStream, ChunkRequest]]
                       ) -> list[np.ndarray]:
        """The chunks of several streams as batches: the r-th chunks of streams of one model
        and K share one forward pass of the perceptual and cognitive processors and one motor
        inverse (at most :data:`MAX_BATCH` windows); a stream's own chunks are computed one
        after the other, so one stream gives the same frames however its input is split.
        Batched with other streams, a window's frames may differ from its unbatched ones by
        float rounding and by the fixed-point inverse's tolerance (it stops when the slowest
        window of the batch has converged): at most about ``model.inverse_tol`` (1e-5)."""
        rounds: dict[tuple, list[list[int]]] = {}
        seen: dict[int, int] = {}
        for i, (stream, _) in enumerate(items):
            assert isinstance(stream, REGNNStream)
            r = seen.get(id(stream), 0)
            seen[id(stream)] = r + 1
            per_round = rounds.setdefault((id(stream.model), stream.k), [])
            if len(per_round) <= r:
                per_round.append([])
            per_round[r].append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(items)
        for per_round in rounds.values():
            for idx in per_round:  # rounds in order: a stream's chunk r before its r + 1
                for lo in range(0, len(idx), MAX_BATCH):
                    part = idx[lo:lo + MAX_BATCH]
                    for i, chunk in zip(part, cls._batch([items[i] for i in part])):
                        out[i] = chunk
        return out

    @staticmethod
    @torch.inference_mode()
    def _batch(items: list[tuple[ChunkedStream, ChunkRequest]]) -> list[np.ndarray]:
        """One batch of chunk requests of streams sharing a model and K, in request order
        (a stream's noise, component pick and boundary alignment advance in that order)."""
        first = items[0][0]
        assert isinstance(first, REGNNStream)
        net, dev = first.model.net, first.device
        D, H = first.context, first.hop
        f = (torch.from_numpy(np.stack([r[0] for _, r in items])).to(dev)
             if first.use_face else None)
        a = (torch.from_numpy(np.stack([r[1] for _, r in items])).to(dev)
             if items[0][1][1] is not None else None)
        modes, logits, edges, adjacency = net.mixture(f, a)  # (B, Q, I, D)
        streams = [s for s, _ in items]
        for b, s in enumerate(streams):
            assert isinstance(s, REGNNStream)
            if s._pick is None:  # each reaction keeps the component it draws at the start
                cdf = torch.softmax(logits[b].double().cpu(), -1).cumsum(-1)
                pick = (cdf[None] <= s._u[:, None]).sum(-1).clamp_(max=modes.shape[1] - 1)
                s._pick = pick.to(dev)  # moved once, not every chunk
        picks = torch.stack([s._pick for s in streams])  # type: ignore[union-attr,misc]
        rows = torch.arange(len(streams), device=dev)[:, None]
        noise = REGNNStream._advance_noise_many(streams)  # type: ignore[arg-type]
        latents = modes[rows, picks] + noise.to(dev)  # (B, K, I, D)
        x, info = first.model.decode(latents, edges, adjacency)  # (B, K, D, 25)
        w = x.cpu().numpy()
        out = []
        for b, (s, _) in enumerate(items):
            assert isinstance(s, REGNNStream)
            s.inverse_info = s.inverse_info.merge(info)
            new = w[b][:, D - H:]
            if s.smooth and s._last is not None:
                new = new + (s._last - w[b][:, D - H - 1])[:, None] * s._fade
            s._last = new[:, -1].copy()
            out.append(clip_to_ranges(new) if s.postprocess else new)
        return out


class OnlineREGNNModule(ReactionModule):
    """Lightning module of the online model: ``regnn train --online`` (registered as
    ``regnn-online``). Training is AFRDL on causal windows; generation is the streaming path."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.online = OnlineREGNN(self.config.model)

    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.online.losses(batch.get("face"), batch.get("audio"), batch["reactions"],
                                  batch["valid"], batch.get("group"))

    def stream(self, k: int = 1, seed: int = 0, sigma: float | None = None,
               generator: torch.Generator | None = None, smooth: bool = True
               ) -> REGNNStream:
        """A new :class:`REGNNStream` with the run's sampling settings (unless given)."""
        return open_stream(self, k, seed, sigma=sigma, generator=generator, smooth=smooth)

    def generate_clips(self, face: torch.Tensor | None, audio: torch.Tensor | None, k: int,
                       sigma: float | None = None, generator: torch.Generator | None = None,
                       *, noise: str | None = None, noise_scale: float | None = None
                       ) -> tuple[torch.Tensor, InverseInfo]:
        g = self.sampling(sigma=sigma, noise=noise, noise_scale=noise_scale)
        pred, info = self.online.generate(face, audio, k, g.sigma, g.noise, generator,
                                          noise_scale=g.noise_scale)
        self.inverse_info = self.inverse_info.merge(info)
        return torch.from_numpy(pred), info


def open_stream(model: OnlineREGNN | OnlineREGNNModule | str | Path, k: int = 1,
                seed: int = 0, *, sigma: float | None = None, noise: str | None = None,
                noise_scale: float | None = None, generator: torch.Generator | None = None,
                smooth: bool = True, postprocess: bool = True, checkpoint: str = "best",
                device: str | torch.device | None = None) -> REGNNStream:
    """The stream of ``k`` reactions of an online REGNN: ``model`` is an
    :class:`OnlineREGNN` (default sampling settings), a loaded online run
    (:class:`OnlineREGNNModule`, the run's ``generate`` settings) or a run folder (loaded,
    ``checkpoint`` best or last); ``sigma``/``noise``/``noise_scale`` replace the settings
    they name. ``device`` (cpu, cuda, cuda:N, auto) moves the model there (None: where it is);
    the noise is drawn on the CPU, so a seed gives the same reactions on any device."""
    from regnn.utils.device import resolve_device

    dev = None if device is None else resolve_device(device)
    if isinstance(model, str | Path):
        from regnn.models.runs import load_module

        model = load_module(model, checkpoint, map_location=str(dev or "cpu"))
    if isinstance(model, OnlineREGNNModule):
        base, net = model.config.generate, model.online
    elif isinstance(model, OnlineREGNN):
        base, net = GenerateConfig(), model
    else:
        raise ConfigError(f"a REGNN stream needs an online model (regnn train --online), "
                          f"got {type(model).__name__}")
    if dev is not None:
        net.to(dev)
    sampling = base.resolve(sigma=sigma, noise=noise, noise_scale=noise_scale)
    return REGNNStream(net, k, sampling, seed=seed, generator=generator, smooth=smooth,
                       postprocess=postprocess)
