"""Image FID for FRRea, as in the REACT protocol: pytorch-fid's Inception network in plain torch.

The REACT protocol measures realism (FRRea) as the Fréchet Inception Distance between
rendered real and rendered generated listener faces, with pytorch-fid (mseitzer/pytorch-fid,
v0.3.0) and its FID Inception weights ``pt_inception-2015-12-05-6726825d.pth`` (the
TensorFlow FID graph ported to PyTorch). pytorch-fid and torch-fidelity both import
torchvision, which has no build for the torch regnn uses, so this module rebuilds what they
compute without it:

* :class:`FIDInception3` has *exactly* the module tree and state-dict keys/shapes of the
  network pytorch-fid builds in ``fid_inception_v3()`` (torchvision's ``Inception3`` with
  ``num_classes=1008, aux_logits=False`` and the blocks replaced by ``FIDInceptionA``,
  ``FIDInceptionC``, ``FIDInceptionE_1``, ``FIDInceptionE_2``), so
  ``model.load_state_dict(torch.load(PATH), strict=True)`` works on the real weight file.
  The FID blocks differ from torchvision's only in their forward pass: the pooling branch
  averages without counting the zero padding (TensorFlow's ``avg_pool``), and the last block
  max-pools instead of average-pooling.
* Input handling is pytorch-fid's: images as float in [0, 1] (``uint8 / 255``, what
  ``torchvision.transforms.ToTensor`` gives for an 8-bit RGB image), resized to 299 x 299
  with ``F.interpolate(mode="bilinear", align_corners=False)``, then scaled to [-1, 1] by
  ``2 x - 1``. Features are the 2048 pool3 values (the final average pooling); 64, 192 and
  768 (earlier blocks, spatially averaged) are offered as pytorch-fid's ``--dims`` does.
* Statistics are pytorch-fid's: the mean and ``np.cov(rowvar=False)`` (N - 1) of the
  features, and :func:`calculate_frechet_distance` follows pytorch-fid's function of the
  same name (``scipy.linalg.sqrtm`` of ``sigma1 @ sigma2``, ``eps`` added to the diagonals
  when that is not finite, the imaginary part dropped when the diagonal's is within 1e-3 of
  zero and refused otherwise).

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
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import Tensor, nn

from regnn.errors import ConfigError, DataError, RegnnError
from regnn.metrics import FID_KEY

__all__ = [
    "BLOCK_INDEX_BY_DIM", "COMPARABILITY_NOTE", "FID_KEY", "FID_WEIGHTS_NAME",
    "IMAGE_EXTENSIONS", "FIDInception3", "FIDSettings", "InceptionFeatures", "LoadedInception",
    "activation_statistics", "calculate_frechet_distance", "fid_from_features", "fid_info",
    "fid_of_folders", "fid_of_reactions", "frame_indices", "image_files", "inception_features",
    "load_inception", "random_inception", "read_image",
]

#: the file name pytorch-fid downloads (github.com/mseitzer/pytorch-fid, release fid_weights)
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
#: feature size -> pytorch-fid block index (0: first max pool, 1: second max pool,
#: 2: input of the auxiliary classifier, 3: final average pool = pool3)
BLOCK_INDEX_BY_DIM = {64: 0, 192: 1, 768: 2, 2048: 3}
#: image suffixes read from a folder (pytorch-fid's list; matched case-insensitively)
IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")
#: number of classes of the TensorFlow 2015-12-05 Inception graph (1000 for torchvision's)
FID_NUM_CLASSES = 1008
MAX_LISTED = 5


# ---------------------------------------------------------------------------- the network
class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU: the unit of Inception-v3."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool_3x3(x: Tensor, tf_padding: bool) -> Tensor:
    # TensorFlow's avg_pool leaves the zero padding out of the average (pytorch-fid's patch)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1,
                        count_include_pad=not tf_padding)


class InceptionA(nn.Module):
    """35 x 35 block (Mixed_5b-d). ``fid=True`` is pytorch-fid's ``FIDInceptionA``."""

    def __init__(self, in_channels: int, pool_features: int, fid: bool = True) -> None:
        super().__init__()
        self.fid = fid
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_3x3(x, self.fid))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a); the same in both variants."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    """17 x 17 block with factorised 7x7 convolutions (Mixed_6b-e). ``fid=True`` is
    pytorch-fid's ``FIDInceptionC``."""

    def __init__(self, in_channels: int, channels_7x7: int, fid: bool = True) -> None:
        super().__init__()
        self.fid = fid
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_3x3(x, self.fid))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a); the same in both variants."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """8 x 8 block with expanded filter banks (Mixed_7b, Mixed_7c).

    ``pool`` selects the pooling branch: ``"avg"`` (torchvision), ``"avg_tf"`` (pytorch-fid's
    ``FIDInceptionE_1``: padding left out of the average) or ``"max"`` (pytorch-fid's
    ``FIDInceptionE_2``: the FID graph max-pools in its last block).
    """

    def __init__(self, in_channels: int, pool: str = "avg") -> None:
        super().__init__()
        if pool not in ("avg", "avg_tf", "max"):
            raise ValueError(f"pool must be avg, avg_tf or max, got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_3x3(x, self.pool == "avg_tf")
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


class FIDInception3(nn.Module):
    """Inception-v3 with the module tree of torchvision's ``Inception3`` (``aux_logits=False``,
    so ``AuxLogits`` is None), as pytorch-fid's ``fid_inception_v3()`` builds it.

    ``fid=True`` (default) gives the FID network (pytorch-fid's FIDInceptionA/C/E_1/E_2
    blocks, ``num_classes`` 1008); ``fid=False`` torchvision's plain blocks (for torchvision's
    ImageNet weights, ``num_classes`` 1000). :meth:`forward` returns the feature maps of the
    requested pytorch-fid blocks (see :data:`BLOCK_INDEX_BY_DIM`), not logits; ``fc`` is only
    there so that the weight files load with ``strict=True``.
    """

    def __init__(self, num_classes: int = FID_NUM_CLASSES, fid: bool = True) -> None:
        super().__init__()
        self.fid = fid
        self.aux_logits = False
        self.transform_input = False
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32, fid=fid)
        self.Mixed_5c = InceptionA(256, pool_features=64, fid=fid)
        self.Mixed_5d = InceptionA(288, pool_features=64, fid=fid)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128, fid=fid)
        self.Mixed_6c = InceptionC(768, channels_7x7=160, fid=fid)
        self.Mixed_6d = InceptionC(768, channels_7x7=160, fid=fid)
        self.Mixed_6e = InceptionC(768, channels_7x7=192, fid=fid)
        self.AuxLogits: nn.Module | None = None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg_tf" if fid else "avg")
        self.Mixed_7c = InceptionE(2048, pool="max" if fid else "avg")
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.5)
        self.fc = nn.Linear(2048, num_classes)

    def blocks(self) -> list[list[nn.Module]]:
        """pytorch-fid's four blocks (``InceptionV3.blocks``) as lists of this net's modules."""
        return [
            [self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3, self.maxpool1],
            [self.Conv2d_3b_1x1, self.Conv2d_4a_3x3, self.maxpool2],
            [self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
             self.Mixed_6c, self.Mixed_6d, self.Mixed_6e],
            [self.Mixed_7a, self.Mixed_7b, self.Mixed_7c, self.avgpool],
        ]

    def forward(self, x: Tensor, last_block: int = 3) -> Tensor:
        """Output of pytorch-fid block ``last_block`` for an already normalised input."""
        for idx, block in enumerate(self.blocks()):
            for module in block:
                x = module(x)
            if idx == last_block:
                break
        return x


class InceptionFeatures(nn.Module):
    """pytorch-fid's ``InceptionV3([block])`` feature extractor around a :class:`FIDInception3`.

    Input: (B, 3, H, W) float in [0, 1]. Resized to ``size`` x ``size`` (299, bilinear,
    ``align_corners=False``) unless already that size, scaled to [-1, 1], passed through the
    blocks up to the one giving ``dims`` features; maps wider than 1 x 1 are averaged
    (pytorch-fid's ``get_activations``). Output: (B, dims).
    """

    def __init__(self, net: FIDInception3, dims: int = 2048, size: int = 299) -> None:
        super().__init__()
        if dims not in BLOCK_INDEX_BY_DIM:
            raise ConfigError(f"FID feature size must be one of {sorted(BLOCK_INDEX_BY_DIM)}, "
                              f"got {dims}")
        if size < 75:
            raise ConfigError(f"Inception-v3 needs inputs of at least 75 pixels, got {size}")
        self.net = net
        self.dims = dims
        self.size = size
        self.block = BLOCK_INDEX_BY_DIM[dims]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False)
        x = 2 * x - 1
        x = self.net(x, last_block=self.block)
        if x.shape[2] != 1 or x.shape[3] != 1:
            x = F.adaptive_avg_pool2d(x, output_size=(1, 1))
        return x.flatten(1)


def random_inception(seed: int = 0, fid: bool = True) -> FIDInception3:
    """A randomly initialised :class:`FIDInception3` (He-normal convolutions, unit batch
    norms), the same for the same seed. Its features mean nothing: for tests and smoke runs
    of the pipeline where the real weight file is not available."""
    gen = torch.Generator().manual_seed(int(seed))
    net = FIDInception3(fid=fid)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen)
                                    * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.01)
                module.bias.zero_()
    return net.eval()


# ---------------------------------------------------------------------------- loading
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


# ---------------------------------------------------------------------------- features
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


def _to_batch(images: list[np.ndarray], size: int) -> Tensor:
    """uint8 (H, W, 3) images -> float (B, 3, H, W) in [0, 1]; images of different sizes are
    resized one by one (the model would resize each to ``size`` anyway)."""
    tensors = []
    for img in images:
        arr = np.asarray(img)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"images must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
        arr = np.require(arr, requirements=["C", "W"])  # PIL's arrays are read-only
        tensors.append(torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0))
    if len({t.shape for t in tensors}) > 1:
        tensors = [F.interpolate(t[None], size=(size, size), mode="bilinear",
                                 align_corners=False)[0] for t in tensors]
    return torch.stack(tensors)


def inception_features(model: InceptionFeatures, images: Iterable[np.ndarray], *,
                       count: int | None = None, batch_size: int = 50,
                       device: str | torch.device = "cpu", progress: bool = False,
                       desc: str = "Inception features") -> np.ndarray:
    """(N, dims) float64 features of uint8 (H, W, 3) RGB ``images`` (any iterable; ``count``
    sizes the progress bar), computed ``batch_size`` images at a time without gradients."""
    if batch_size < 1:
        raise ConfigError(f"FID batch size must be >= 1, got {batch_size}")
    from tqdm import tqdm

    model.eval().to(device)
    rows: list[np.ndarray] = []
    bar = tqdm(total=count, desc=desc, unit="img", leave=False, disable=not progress)
    pending: list[np.ndarray] = []

    def flush() -> None:
        batch = _to_batch(pending, model.size).to(device)
        with torch.inference_mode():
            rows.append(model(batch).double().cpu().numpy())
        bar.update(len(pending))
        pending.clear()

    try:
        for img in images:
            pending.append(img)
            if len(pending) == batch_size:
                flush()
        if pending:
            flush()
    finally:
        bar.close()
    if not rows:
        return np.empty((0, model.dims))
    return np.concatenate(rows)


def activation_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features as pytorch-fid computes them (``np.cov``,
    unbiased)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise DataError(f"FID needs at least 2 images, got features of shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # SciPy >= 1.16 warns on every singular input; with fewer images than feature dimensions
    # (the usual case) the covariances are singular. pytorch-fid called sqrtm(disp=False),
    # which stayed silent; the non-finite and imaginary checks below are the safeguards.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


# Adapted from pytorch-fid 0.3.0, src/pytorch_fid/fid_score.py, calculate_frechet_distance
# (Copyright 2018 Institute of Bioinformatics, JKU Linz; code adapted from
# github.com/bioinf-jku/TTUR; stable version by Dougal J. Sutherland), licensed under the
# Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0). Changes: the
# deprecated ``disp`` argument of scipy.linalg.sqrtm is not used (same result; SciPy's
# singular-matrix warning is silenced instead, as disp=False did), the eps retry is reported
# through ``warnings`` instead of print, errors are RegnnError/ValueError with the shapes
# named, and the value is returned as a Python float.
def calculate_frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                               sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` of two Gaussians,
    computed as pytorch-fid does (``scipy.linalg.sqrtm`` of the product; ``eps`` added to
    both diagonals when that is not finite; an imaginary part is dropped when the diagonal's
    is within 1e-3 of zero, else :class:`~regnn.errors.RegnnError`)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors of different lengths: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape:
        raise ValueError(f"covariances of different shapes: {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(f"fid calculation produces singular product; adding {eps} to diagonal "
                      "of cov estimates", RuntimeWarning, stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise RegnnError(f"FID: the matrix square root has an imaginary component {m} "
                             "(too few images for the feature size?)")
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two (N, D) feature sets (pytorch-fid's statistics and distance)."""
    m1, s1 = activation_statistics(real)
    m2, s2 = activation_statistics(fake)
    return calculate_frechet_distance(m1, s1, m2, s2)


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


# ---------------------------------------------------------------------------- REACT FRRea
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
