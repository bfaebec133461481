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

The network is :mod:`regnn.metrics.inception`; weight files, image folders and rendered
reactions are found on the evaluation side, :mod:`regnn.fid`.

(Comparability of FIDs: :mod:`regnn.fid`.)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import Tensor

from regnn.errors import ConfigError, DataError, RegnnError
from regnn.metrics.inception import (
    BLOCK_INDEX_BY_DIM,
    FID_NUM_CLASSES,
    FIDInception3,
    InceptionFeatures,
    random_inception,
)

__all__ = [
    "BLOCK_INDEX_BY_DIM", "FID_NUM_CLASSES", "FIDInception3", "InceptionFeatures",
    "activation_statistics", "calculate_frechet_distance", "fid_from_features",
    "inception_features", "random_inception",
]


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
