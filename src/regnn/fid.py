"""The image FID of the REACT protocol's FRRea on the evaluation side: weight files, image
folders and rendered reactions (``regnn evaluate --fid-weights``).

The network and the statistics are :mod:`regnn.metrics.fid` (pytorch-fid's computation in plain
torch); this module finds them their inputs: :func:`load_inception` recognises the accepted
checkpoints, :func:`fid_of_folders` compares two image folders (what ``python -m pytorch_fid
REAL FAKE`` does), and :func:`fid_of_reactions` renders real and generated listener faces with
:class:`regnn.render.FaceRenderer` and compares them.

Accepted checkpoints (:func:`load_inception`): pytorch-fid's weight file (torch-fidelity's
``weights-inception-2015-12-05-6726825d.pth`` holds the same keys), a state dict of
pytorch-fid's ``InceptionV3`` wrapper (``blocks.<i>.<j>.…`` keys, mapped by position), and
torchvision's ImageNet ``inception_v3_google`` weights (``AuxLogits.*`` dropped, 1000
classes; run with torchvision's plain blocks as pytorch-fid's ``use_fid_inception=False``
does; *not* the FID network, so its numbers are not FID as published). Anything else is
refused naming the file and the first missing / unexpected / mis-shaped keys.

A FID is only comparable with the REACT protocol's (or any published one) when the same
renderer, the same frames and the same weights are used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from regnn.errors import ConfigError, DataError
from regnn.metrics import FID_KEY
from regnn.metrics.fid import (
    BLOCK_INDEX_BY_DIM,
    FID_NUM_CLASSES,
    FIDInception3,
    InceptionFeatures,
    activation_statistics,
    calculate_frechet_distance,
    fid_from_features,
    inception_features,
    random_inception,
)

__all__ = [
    "BLOCK_INDEX_BY_DIM", "COMPARABILITY_NOTE", "FID_KEY", "FID_WEIGHTS_NAME",
    "IMAGE_EXTENSIONS", "FIDInception3", "FIDSettings", "InceptionFeatures", "LoadedInception",
    "activation_statistics", "calculate_frechet_distance", "fid_from_features", "fid_info",
    "fid_of_folders", "fid_of_reactions", "frame_indices", "image_files", "inception_features",
    "load_inception", "random_inception", "read_image",
]

#: the file name pytorch-fid downloads (github.com/mseitzer/pytorch-fid, release fid_weights)
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


#: image suffixes read from a folder (pytorch-fid's list; matched case-insensitively)
IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")


MAX_LISTED = 5


@dataclass
class LoadedInception:
    """A network loaded from a checkpoint file, with what was recognised in it."""

    net: FIDInception3
    path: Path
    kind: str  # "pytorch-fid", "pytorch-fid-wrapper" or "torchvision-imagenet"
    sha256: str

    @property
    def is_fid_network(self) -> bool:
        """True for the FID Inception weights (the network of published FIDs)."""
        return self.kind != "torchvision-imagenet"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unwrap(obj: Any) -> Any:
    """The state dict inside common checkpoint containers, with ``module.`` prefixes gone."""
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, Tensor) for v in obj.values()):
            inner = next((obj[k] for k in ("state_dict", "model", "model_state_dict", "net")
                          if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if isinstance(obj, dict) and obj and all(str(k).startswith("module.") for k in obj):
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    return obj


_WRAPPER_NAMES = [
    ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"],
    ["Conv2d_3b_1x1", "Conv2d_4a_3x3"],
    ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
     "Mixed_6e"],
    ["Mixed_7a", "Mixed_7b", "Mixed_7c"],
]


def _from_wrapper(state: dict[str, Any]) -> dict[str, Any]:
    """pytorch-fid ``InceptionV3`` keys (``blocks.<i>.<j>.rest``) -> Inception3 keys."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        parts = key.split(".", 3)
        try:
            out[f"{_WRAPPER_NAMES[int(parts[1])][int(parts[2])]}.{parts[3]}"] = value
        except (ValueError, IndexError):
            out[key] = value  # reported as unexpected below
    return out


def _listed(items: Sequence[str]) -> str:
    head = ", ".join(items[:MAX_LISTED])
    return head + (f", ... ({len(items)} in all)" if len(items) > MAX_LISTED else "")


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> LoadedInception:
    """Load an Inception-v3 checkpoint for FID (see the module doc for the accepted layouts).

    Raises :class:`~regnn.errors.DataError` naming the file when it is missing, unreadable
    or not an Inception-v3 state dict (first missing, unexpected and mis-shaped keys listed).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Inception weights file does not exist (pytorch-fid's file is "
                        f"{FID_WEIGHTS_NAME})", path=path, kind="missing-file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file it cannot read
        raise DataError(f"cannot read Inception weights ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); expected a state "
                        f"dict saved with torch.save, like pytorch-fid's {FID_WEIGHTS_NAME}",
                        path=path, kind="bad-weights") from exc
    state = _unwrap(raw)
    if not isinstance(state, dict) or not state:
        raise DataError(f"Inception weights file holds a {type(raw).__name__}, not a state "
                        f"dict of tensors", path=path, kind="bad-weights")
    state = {str(k): v for k, v in state.items()}
    kind = "pytorch-fid"
    if any(k.startswith("blocks.") for k in state):
        state = _from_wrapper(state)
        kind = "pytorch-fid-wrapper"
    fc = state.get("fc.weight")
    num_classes = int(fc.shape[0]) if isinstance(fc, Tensor) and fc.ndim == 2 else \
        FID_NUM_CLASSES
    has_aux = any(k.startswith("AuxLogits.") for k in state)
    fid = num_classes == FID_NUM_CLASSES and not has_aux
    if not fid:
        kind = "torchvision-imagenet"
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    net = FIDInception3(num_classes=num_classes, fid=fid)
    expected = net.state_dict()
    if kind == "pytorch-fid-wrapper":  # the wrapper has no classifier; it is never used
        for key in ("fc.weight", "fc.bias"):
            state.setdefault(key, expected[key])
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items()
             if k in state and isinstance(state[k], Tensor) and state[k].shape != v.shape]
    not_tensor = [k for k in expected if k in state and not isinstance(state[k], Tensor)]
    if missing or unexpected or wrong or not_tensor:
        parts = []
        if missing:
            parts.append(f"{len(missing)} expected keys missing (first: {_listed(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {_listed(unexpected)})")
        if wrong:
            parts.append(f"{len(wrong)} keys of the wrong shape (first: {_listed(wrong)})")
        if not_tensor:
            parts.append(f"{len(not_tensor)} keys are not tensors ({_listed(not_tensor)})")
        raise DataError(
            "not an Inception-v3 checkpoint in pytorch-fid's (torchvision Inception3) layout: "
            + "; ".join(parts) + f". Expected e.g. pytorch-fid's {FID_WEIGHTS_NAME} with keys "
            "like Conv2d_1a_3x3.conv.weight, Mixed_7c.branch_pool.bn.running_var, fc.weight",
            path=path, kind="bad-weights")
    # strict: every key is checked above; torch fills a missing num_batches_tracked itself
    net.load_state_dict(state, strict=True)
    net.eval().to(device)
    return LoadedInception(net=net, path=path, kind=kind, sha256=_sha256(path))


def image_files(folder: str | Path) -> list[Path]:
    """Sorted image files directly in ``folder`` (suffixes :data:`IMAGE_EXTENSIONS`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("image folder does not exist", path=folder, kind="missing-file")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)
    if len(files) < 2:
        raise DataError(f"FID needs at least 2 images, found {len(files)} "
                        f"({'/'.join(IMAGE_EXTENSIONS)})", path=folder, kind="missing-file")
    return files


def read_image(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (PIL ``convert("RGB")``, like pytorch-fid)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read image: {exc}", path=path) from exc


def _images_of(files: Sequence[Path]) -> Iterator[np.ndarray]:
    for path in files:
        yield read_image(path)


def fid_of_folders(real_dir: str | Path, fake_dir: str | Path, weights: str | Path | None = None,
                   *, model: InceptionFeatures | None = None, dims: int = 2048,
                   batch_size: int = 50, device: str | torch.device = "cpu",
                   progress: bool = False) -> dict[str, Any]:
    """FID between the images of two folders (what ``python -m pytorch_fid REAL FAKE`` does).

    Pass the checkpoint path ``weights`` (loaded with :func:`load_inception`) or a ready
    ``model``. Returns ``{"FID", "real_images", "fake_images", "dims"}``.
    """
    real_files, fake_files = image_files(real_dir), image_files(fake_dir)
    if model is None:
        if weights is None:
            raise ConfigError("FID needs Inception weights (weights=PATH) or a model")
        model = InceptionFeatures(load_inception(weights, device).net, dims=dims)
    feats = []
    for name, files in (("real", real_files), ("fake", fake_files)):
        feats.append(inception_features(model, _images_of(files), count=len(files),
                                        batch_size=batch_size, device=device,
                                        progress=progress, desc=f"Inception features ({name})"))
    return {"FID": fid_from_features(feats[0], feats[1]), "real_images": len(real_files),
            "fake_images": len(fake_files), "dims": model.dims}


COMPARABILITY_NOTE = (
    "Image FID is only comparable with the REACT protocol's (or a paper's) when the same "
    "face renderer, the same frames and the same Inception weights are used; regnn's default "
    "renderer is its weight-free cartoon face (regnn.render.FaceRenderer), not the REACT "
    "challenge's 3-D renderer/PIRender.")


@dataclass
class FIDSettings:
    """Options of the image FID of ``regnn evaluate --fid-weights`` (see :func:`fid_of_reactions`).

    ``frames``: frames per reaction, evenly spaced over the clip; ``samples``: the first
    ``samples`` of the K predictions per item (None: all); ``size``: rendered face size in
    pixels; ``dims``: Inception feature size (2048 = pool3, the FID standard); ``real_dir`` /
    ``fake_dir``: compare two image folders instead of rendering; ``dump_dir``: also write
    the rendered frames there as PNG (``real/``, ``fake/``).
    """

    weights: str | Path
    frames: int = 10
    samples: int | None = None
    size: int = 256
    dims: int = 2048
    batch_size: int = 50
    device: str = "cpu"
    real_dir: str | Path | None = None
    fake_dir: str | Path | None = None
    dump_dir: str | Path | None = None

    def check(self) -> None:
        """Refuse bad values (:class:`~regnn.errors.ConfigError`) before any work."""
        if self.frames < 1:
            raise ConfigError(f"--fid-frames must be >= 1, got {self.frames}")
        if self.samples is not None and self.samples < 1:
            raise ConfigError(f"--fid-samples must be >= 1, got {self.samples}")
        if self.size < 32:
            raise ConfigError(f"--fid-size must be >= 32 pixels, got {self.size}")
        if self.dims not in BLOCK_INDEX_BY_DIM:
            raise ConfigError(f"--fid-dims must be one of {sorted(BLOCK_INDEX_BY_DIM)}, "
                              f"got {self.dims}")
        if self.batch_size < 1:
            raise ConfigError(f"--fid-batch-size must be >= 1, got {self.batch_size}")
        if (self.real_dir is None) != (self.fake_dir is None):
            raise ConfigError("--fid-real and --fid-fake go together (two image folders)")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--fid-device {self.device}: no CUDA device is available")

    def model(self) -> tuple[InceptionFeatures, LoadedInception]:
        """Check the options and load the weights (a clear error if they cannot be)."""
        self.check()
        loaded = load_inception(self.weights, self.device)
        return InceptionFeatures(loaded.net, dims=self.dims).to(self.device), loaded


def frame_indices(length: int, count: int) -> np.ndarray:
    """``count`` frame indices evenly spaced over ``[0, length - 1]`` (all if fewer)."""
    if count >= length:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, count)).astype(int))


def _rendered(seqs: np.ndarray, idx: np.ndarray, size: int, names: list[str],
              dump: Path | None) -> Iterator[np.ndarray]:
    """Faces of frames ``idx`` of each (T, 25) sequence in ``seqs`` (M, T, 25), in order."""
    from regnn.render.face import FaceRenderer
    from regnn.utils.io import atomic_path

    renderer = FaceRenderer(size=size)
    for seq, name in zip(seqs, names):
        for t in idx:
            img = renderer.render(seq[t])
            if dump is not None:
                from PIL import Image

                with atomic_path(dump / f"{name}_f{int(t):04d}.png") as tmp:
                    Image.fromarray(img).save(tmp, format="PNG")
            yield img


def fid_of_reactions(pred: np.ndarray, listener: np.ndarray, settings: FIDSettings, *,
                     model: InceptionFeatures | None = None, progress: bool = False
                     ) -> dict[str, Any]:
    """Image FID between rendered real listener reactions and rendered predictions.

    ``pred`` (N, K, T, 25): the generated reactions; ``listener`` (N, T, 25): the real
    listener reaction of each item. Frames :func:`frame_indices` (``settings.frames`` per
    reaction) of every real reaction and of the first ``settings.samples`` (all by default)
    predictions of every item are drawn with :class:`regnn.render.FaceRenderer` at
    ``settings.size`` pixels and passed through the Inception network (pytorch-fid's input
    handling); the score is pytorch-fid's Fréchet distance of the two feature sets.
    Returns ``{"FID", "real_images", "fake_images", "frames", "samples", ...}``.
    """
    pred = np.asarray(pred, dtype=np.float32)
    listener = np.asarray(listener, dtype=np.float32)
    if pred.ndim != 4 or listener.ndim != 3 or pred.shape[0] != listener.shape[0]:
        raise ValueError(f"pred must be (N, K, T, 25) and listener (N, T, 25) with the same N, "
                         f"got {pred.shape} and {listener.shape}")
    settings.check()
    if model is None:
        model, _ = settings.model()
    k = pred.shape[1] if settings.samples is None else min(settings.samples, pred.shape[1])
    idx = frame_indices(min(pred.shape[2], listener.shape[1]), settings.frames)
    fake = pred[:, :k].reshape(-1, *pred.shape[2:])
    n_real, n_fake = len(listener) * len(idx), len(fake) * len(idx)
    if min(n_real, n_fake) < 2:
        raise ConfigError(f"FID needs at least 2 images per set, got {n_real} real and "
                          f"{n_fake} generated (raise --fid-frames)")
    dump = None if settings.dump_dir is None else Path(settings.dump_dir)
    real_names = [f"item{i:05d}" for i in range(len(listener))]
    fake_names = [f"item{i:05d}_k{j:02d}" for i in range(pred.shape[0]) for j in range(k)]
    feats = []
    for name, seqs, names in (("real", listener, real_names), ("fake", fake, fake_names)):
        frames = _rendered(seqs, idx, settings.size, names,
                           None if dump is None else dump / name)
        count = len(seqs) * len(idx)
        feats.append(inception_features(model, frames, count=count,
                                        batch_size=settings.batch_size, device=settings.device,
                                        progress=progress,
                                        desc=f"FID: rendering + Inception ({name})"))
    return {"FID": fid_from_features(feats[0], feats[1]), "real_images": n_real,
            "fake_images": n_fake, "frames": [int(t) for t in idx], "samples": int(k),
            "dims": model.dims, "size": settings.size}


def fid_info(settings: FIDSettings, loaded: LoadedInception, source: str,
             counts: dict[str, Any]) -> dict[str, Any]:
    """What ``scores.json`` records beside the FID value (weights, renderer, image counts)."""
    info: dict[str, Any] = {
        "weights": str(Path(settings.weights).resolve()),
        "weights_sha256": loaded.sha256,
        "weights_kind": loaded.kind,
        "fid_network": loaded.is_fid_network,
        "source": source,
        "dims": settings.dims,
        "batch_size": settings.batch_size,
        "device": settings.device,
        "real_images": counts["real_images"],
        "fake_images": counts["fake_images"],
        "note": COMPARABILITY_NOTE,
    }
    if source == "rendered":
        info.update(renderer=f"regnn.render.FaceRenderer(size={settings.size}, supersample=2)",
                    frames_per_reaction=len(counts["frames"]), frame_indices=counts["frames"],
                    samples_per_item=counts["samples"])
    else:
        info.update(real_dir=str(Path(str(settings.real_dir)).resolve()),
                    fake_dir=str(Path(str(settings.fake_dir)).resolve()))
    if not loaded.is_fid_network:
        info["warning"] = ("torchvision ImageNet weights, not the FID Inception weights: "
                           "not comparable with any published FID")
    return info
