"""pytorch-fid's FID Inception-v3 network in plain torch (no torchvision): the network of
:mod:`regnn.metrics.fid`.

:class:`FIDInception3` has *exactly* the module tree and state-dict keys/shapes of the network
pytorch-fid builds in ``fid_inception_v3()`` (torchvision's ``Inception3`` with
``num_classes=1008, aux_logits=False`` and the blocks replaced by ``FIDInceptionA``,
``FIDInceptionC``, ``FIDInceptionE_1``, ``FIDInceptionE_2``), so
``model.load_state_dict(torch.load(PATH), strict=True)`` works on the real weight file. The FID
blocks differ from torchvision's only in their forward pass: the pooling branch averages
without counting the zero padding (TensorFlow's ``avg_pool``), and the last block max-pools
instead of average-pooling. :class:`InceptionFeatures` is pytorch-fid's ``InceptionV3([block])``
feature extractor around it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regnn.errors import ConfigError

__all__ = ["BLOCK_INDEX_BY_DIM", "FID_NUM_CLASSES", "FIDInception3", "InceptionFeatures",
           "random_inception"]

#: feature size -> pytorch-fid block index (0: first max pool, 1: second max pool,
#: 2: input of the auxiliary classifier, 3: final average pool = pool3)
BLOCK_INDEX_BY_DIM = {64: 0, 192: 1, 768: 2, 2048: 3}


#: number of classes of the TensorFlow 2015-12-05 Inception graph (1000 for torchvision's)
FID_NUM_CLASSES = 1008


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
