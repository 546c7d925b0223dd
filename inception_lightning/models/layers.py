"""Modules built from specs: ConvBNAct, Fork and Branch thread channel counts through ops."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from inception_lightning.models.specs import Conv, Fork, Op, Pool, out_size, scale_chs

BN_EPS = 1e-3  # TF-slim's batch-norm epsilon, as timm uses for these models


class ConvBNAct(nn.Module):
    """Bias-free conv, BatchNorm and ReLU; `out_chs` is its output width."""

    def __init__(self, in_chs: int, spec: Conv, width: float = 1.0) -> None:
        super().__init__()
        self.out_chs = scale_chs(spec.out_chs, width)
        self.spec = spec
        self.conv = nn.Conv2d(
            in_chs, self.out_chs, spec.kernel, spec.stride, spec.padding, bias=False
        )
        self.bn = nn.BatchNorm2d(self.out_chs, eps=BN_EPS)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class ForkConcat(nn.Module):
    """Parallel convs on one input, concatenated on channels (v3's expanded filter bank)."""

    def __init__(self, in_chs: int, spec: Fork, width: float = 1.0) -> None:
        super().__init__()
        self.paths = nn.ModuleList(ConvBNAct(in_chs, op, width) for op in spec.ops)
        self.out_chs = sum(p.out_chs for p in self.paths)
        self.spec = spec.ops[0]  # every path keeps the same spatial size

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([p(x) for p in self.paths], dim=1)


def make_pool(spec: Pool) -> nn.Module:
    """The torch pooling module for a Pool spec."""
    if spec.kind == "max":
        return nn.MaxPool2d(spec.kernel, spec.stride, spec.padding)
    return nn.AvgPool2d(
        spec.kernel, spec.stride, spec.padding, count_include_pad=spec.count_include_pad
    )


def make_layer(in_chs: int, op: Op, width: float = 1.0) -> tuple[nn.Module, int]:
    """Build one op and return it with its output channel count."""
    if isinstance(op, Conv):
        layer = ConvBNAct(in_chs, op, width)
        return layer, layer.out_chs
    if isinstance(op, Fork):
        fork = ForkConcat(in_chs, op, width)
        return fork, fork.out_chs
    return make_pool(op), in_chs


def layer_out_size(layer: nn.Module, size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after a layer built by `make_layer`."""
    if isinstance(layer, ConvBNAct | ForkConcat):
        return out_size(size, layer.spec)
    if isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
        return out_size(size, Pool("max", layer.kernel_size, layer.stride, layer.padding))
    if isinstance(layer, Branch):
        for sub in layer:
            size = layer_out_size(sub, size)
        return size
    raise TypeError(f"no spatial rule for {type(layer).__name__}")


class Branch(nn.Sequential):
    """One branch of an Inception block: ops applied in order; `out_chs` is its width."""

    def __init__(self, in_chs: int, ops: tuple[Op, ...], width: float = 1.0) -> None:
        layers = []
        chs = in_chs
        for op in ops:
            layer, chs = make_layer(chs, op, width)
            layers.append(layer)
        super().__init__(*layers)
        self.out_chs = chs
