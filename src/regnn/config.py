"""Typed run configuration: model, training and generation settings.

One source of truth for defaults: the dataclass defaults below **are regnn's default
configuration** (``regnn``: `regnn train` without ``--config``, Table I's "Ours"), trained
with the paper's sizes and optimiser (Sec. V-A: D = 50 / stride 25 windows, P = 8 edge
channels, 2 motor layers, 128-wide fusion, Adam lr 1e-4, weight decay 5e-4, 100 epochs, lr
x0.1 at epochs 20 and 50, M = 10 appropriate reactions per window, K = 10). Where the method
differs from the paper's text (a mixture of ``modes`` components, per-component agreement,
clip chunks, the smooth "residual" noise, no normalisation before the motor's sigmoid) the
README's "Three configurations" says why. The YAML files shipped in :mod:`regnn.configs`
hold *overrides* only: ``regnn.yaml`` is empty on purpose, ``paper.yaml`` is the method as the
paper's text specifies it, ``authors.yaml`` as the authors' published code does it, and
``demo.yaml`` shrinks the default run so that ``make demo`` trains in a few minutes on 2 cores.

``load_config("demo")`` / ``load_config("path/to/file.yaml")`` returns a :class:`RunConfig`;
unknown keys and wrong types are :class:`~regnn.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from regnn.errors import ConfigError

BUILTIN_CONFIGS = ("regnn", "paper", "authors", "demo")
MODES = 4  # components of the default model's predicted distribution
NOISE_MODES = ("residual", "gaussian", "scaled")
DISTRIBUTION_LOSSES = ("mixture", "min", "mean", "nll")


@dataclass
class ModelConfig:
    """Architecture and objective. Ablations are switches here (see ``docs`` in README)."""

    name: str = "regnn"  # key of regnn.models.registry.MODELS
    face_dim: int = 25  # per-frame face features: the 25 attributes (58 for 3DMM coefficients)
    audio_dim: int = 64  # per-frame audio features (log-mel bands of the data layer)
    use_face: bool = True  # False: audio-only ablation
    use_audio: bool = True  # False: face-only ablation
    face_skip: bool = False  # Ẑp = heads + speaker attributes (see regnn.models.regnn)
    width: int = 128  # fusion width
    heads: int = 4
    cross_layers: int = 1  # face <- audio cross-modal blocks
    self_layers: int = 1  # self-attention blocks after the fusion
    ffn_mult: int = 2
    dropout: float = 0.0
    causal: bool = False  # online variant: attention masked to the past
    # Enc_A of Eq. 3: "linear" (one linear map per log-mel frame) | "prosody" (log energy,
    # spectral centroid/spread and their changes beside the bands, then temporal convolutions)
    audio_encoder: str = "linear"
    window: int = 50  # D: frames per graph window = node feature size (offline and online)
    stride: int = 25  # frames between the starts of training windows
    # H: listener frames per chunk of the online model (regnn train --online --hop H); 0 for
    # offline models. An online training window spans D + H - 1 frames (``span``).
    hop: int = 0
    edge_channels: int = 8  # P; 1 = single-value edges (no-MEFL ablation)
    edge_key_dim: int = 16
    top_k: int = 6  # outgoing edges kept per node by MEFL (plus a self loop)
    motor: str = "regnn"  # motor processor type
    motor_layers: int = 2
    motor_key_dim: int = 16
    motor_norm: bool = False  # the normalisation before the motor's sigmoid (Sec. IV-C)
    lipschitz: float = 0.9  # c: guaranteed Lipschitz constant of each motor layer's φ
    objective: str = "afrdl"  # "afrdl" (Sec. IV-B) or "mse" (the "without graph" ablation)
    modes: int = MODES  # Q: components of the predicted distribution (1 = the paper's one Ẑp)
    # Eq. 9 form: "mixture" | "min" | "mean" | "nll" (see regnn.models.regnn)
    distribution_loss: str = "mixture"
    gmm_sigma: float = 0.6  # σ of the GMM components, used by distribution_loss="nll"
    precision_weight: float = 0.5  # "mixture": weight of the term pulling every mode to data
    agreement: str = "component"  # Eq. 7 over "all" M latents or within each "component"
    agreement_weight: float = 1.0  # weight of the latent-agreement term, Eq. 7
    inverse_tol: float = 1e-5  # fixed-point stop: max |x_k - x_{k-1}| (errors reached: ~1e-6)
    inverse_max_iter: int = 200


    @property
    def span(self) -> int:
        """Frames of one training window: ``D``, or ``D + H - 1`` for an online model (its
        speaker frames are the first ``D``, the listeners' the last ``D``)."""
        return self.window + self.hop - 1 if self.hop else self.window


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 128  # windows per optimiser step (global: split over DDP processes)
    appropriate: int = 10  # M: appropriate real reactions per window (sampled, up to M)
    # windows per training sample: c consecutive windows of one clip sharing their M
    # listeners, so a listener's mixture component is decided over c windows (1: the paper)
    clip_windows: int = 8
    lr: float = 1e-4
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [20, 50])
    lr_gamma: float = 0.1
    grad_clip: float = 0.0  # 0 = off
    val_items: int = 8  # validation subset size (speaker items) scored each epoch
    val_samples: int = 2  # reactions generated per validation item
    val_every: int = 1  # epochs between validations
    num_workers: int = 0
    accelerator: str = "cpu"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    threads: int = 0  # torch CPU threads (0 = torch's default)
    deterministic: bool = True


@dataclass
class GenerateConfig:
    samples: int = 10  # K
    # ε of the sample Ẑp + ε (regnn.models.regnn.sample_noise): "residual" (smooth noise
    # with the per-node variance and frame-to-frame change of the training latents around
    # their mode, times noise_scale) | "gaussian" (i.i.d. N(0, σ²), the paper's text) |
    # "scaled" (the authors' code: N(0, 1) rescaled to a peak of sqrt(σ) per clip)
    noise: str = "residual"
    sigma: float = 0.6  # σ of "gaussian" and "scaled"
    # multiplies the "residual" noise: a sampling temperature (reduced-temperature sampling of
    # normalising flows, Kingma & Dhariwal 2018); 1 = the full real within-mode spread
    noise_scale: float = 0.5
    binarize_aus: bool = False  # threshold the 15 AUs of every generated frame to {0, 1}

    def resolve(self, *, samples: int | None = None, sigma: float | None = None,
                noise: str | None = None, noise_scale: float | None = None,
                binarize_aus: bool | None = None) -> GenerateConfig:
        """These settings with the given ones in place of None: the one place where a caller's
        sampling options meet a run's (validated as a config file's values, naming the key)."""
        changes = {k: v for k, v in (("samples", samples), ("sigma", sigma), ("noise", noise),
                                     ("noise_scale", noise_scale),
                                     ("binarize_aus", binarize_aus)) if v is not None}
        if not changes:
            return self
        return merge(RunConfig(generate=self), {"generate": changes}).generate


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    base: str = "regnn"  # which built-in (or file) these values came from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> RunConfig:
        m, t, g = self.model, self.train, self.generate
        checks = [
            (m.window >= 2, f"model.window must be >= 2, got {m.window}"),
            (1 <= m.stride <= m.span, f"model.stride must be in [1, window], got {m.stride}"),
            (m.hop >= 0, f"model.hop must be >= 0, got {m.hop}"),
            (m.hop == 0 or m.window > m.hop,
             f"model.window ({m.window}) must be larger than model.hop ({m.hop}): the window "
             "overlaps the previous chunk by window - hop frames, which carry the state that "
             "keeps chunks continuous"),
            (m.edge_channels >= 1, f"model.edge_channels must be >= 1, got {m.edge_channels}"),
            (m.top_k >= 1, f"model.top_k must be >= 1, got {m.top_k}"),
            (0 < m.lipschitz < 1, f"model.lipschitz must be in (0, 1), got {m.lipschitz}"),
            (m.use_face or m.use_audio, "model.use_face and model.use_audio are both false"),
            (m.audio_encoder in ("linear", "prosody"),
             f"model.audio_encoder must be 'linear' or 'prosody', got {m.audio_encoder!r}"),
            (m.objective in ("afrdl", "mse"),
             f"model.objective must be 'afrdl' or 'mse', got {m.objective!r}"),
            (m.distribution_loss in DISTRIBUTION_LOSSES,
             f"model.distribution_loss must be one of {'|'.join(DISTRIBUTION_LOSSES)}, "
             f"got {m.distribution_loss!r}"),
            (m.modes >= 1, f"model.modes must be >= 1, got {m.modes}"),
            (m.modes == 1 or m.distribution_loss == "mixture",
             f"model.modes = {m.modes} needs distribution_loss 'mixture' (the other forms "
             f"compare one Ẑp with the latents), got {m.distribution_loss!r}"),
            (m.agreement in ("all", "component"),
             f"model.agreement must be 'all' or 'component', got {m.agreement!r}"),
            (m.precision_weight >= 0,
             f"model.precision_weight must be >= 0, got {m.precision_weight}"),
            (m.width % m.heads == 0, f"model.width {m.width} not divisible by heads {m.heads}"),
            (t.epochs >= 1, f"train.epochs must be >= 1, got {t.epochs}"),
            (t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}"),
            (t.appropriate >= 1, f"train.appropriate must be >= 1, got {t.appropriate}"),
            (t.clip_windows >= 1, f"train.clip_windows must be >= 1, got {t.clip_windows}"),
            (g.samples >= 1, f"generate.samples must be >= 1, got {g.samples}"),
            (g.sigma >= 0, f"generate.sigma must be >= 0, got {g.sigma}"),
            (g.noise in NOISE_MODES,
             f"generate.noise must be one of {', '.join(NOISE_MODES)}, got {g.noise!r}"),
            (g.noise_scale >= 0, f"generate.noise_scale must be >= 0, got {g.noise_scale}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        return self


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        (inner,) = typing.get_args(tp)
        return [_coerce(v, inner, key) for v in value]
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    return value


def _apply(obj: Any, overrides: dict[str, Any], prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in overrides.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key {full!r}; known keys under "
                              f"{prefix.rstrip('.') or 'the top level'}: {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {full!r} must be a mapping, got {value!r}")
            _apply(current, value, f"{full}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def merge(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a copy of ``config`` with nested ``overrides`` applied (and validated)."""
    new = dataclasses.replace(
        config, model=dataclasses.replace(config.model), train=dataclasses.replace(config.train),
        generate=dataclasses.replace(config.generate),
    )
    _apply(new, overrides, "")
    return new.validate()


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, "
                          f"got {type(data).__name__}")
    return data


def load_config(name_or_path: str | Path = "regnn",
                overrides: dict[str, Any] | None = None) -> RunConfig:
    """Resolve a built-in config name (``paper``, ``demo``) or a YAML file into a RunConfig.

    A file may say ``base: demo`` to start from a built-in instead of the paper defaults.
    """
    name = str(name_or_path)
    if name in BUILTIN_CONFIGS:
        text = resources.files("regnn.configs").joinpath(f"{name}.yaml").read_text("utf-8")
        data, origin = _read_yaml(text, f"built-in config {name!r}"), name
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"config {name!r} is neither a built-in "
                              f"({', '.join(BUILTIN_CONFIGS)}) "
                              "nor an existing YAML file")
        data, origin = _read_yaml(path.read_text("utf-8"), str(path)), str(path)
    base = data.pop("base", None)
    if base is not None and base != origin:
        if base not in BUILTIN_CONFIGS:
            raise ConfigError(f"{origin}: base must be one of {BUILTIN_CONFIGS}, got {base!r}")
        config = load_config(base)
    else:
        config = RunConfig()
    config = merge(config, data)
    config.base = origin
    if overrides:
        config = merge(config, overrides)
    return config


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig saved by :meth:`RunConfig.to_dict` (e.g. from RUN/config.yaml).
    Online runs saved before ``model.hop`` existed stored the training span ``D + H - 1`` as
    ``model.window`` and ``H`` as ``model.stride``; they are read as ``window = D, hop = H``."""
    data = dict(data)
    model = data.get("model")
    if isinstance(model, dict) and "audio_encoder" not in model:
        data["model"] = model = {**model, "audio_encoder": "linear"}  # saved before the option
    if isinstance(model, dict) and model.get("name") == "regnn-online" and "hop" not in model:
        hop = int(model.get("stride", ModelConfig.stride))
        data["model"] = {**model, "hop": hop,
                         "window": int(model.get("window", ModelConfig.window)) - hop + 1}
    base = data.pop("base", "regnn")
    config = merge(RunConfig(), data)
    config.base = base
    return config
