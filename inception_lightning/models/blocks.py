"""Generic Inception blocks and the helpers that walk any model's blocks and branches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from inception_lightning.models.layers import Branch, layer_out_size
from inception_lightning.models.specs import BlockSpec


class InceptionBlock(nn.Module):
    """Parallel branches concatenated on channels; branch `n` is `self.branches[n]`."""

    def __init__(self, in_chs: int, spec: BlockSpec, width: float = 1.0) -> None:
        super().__init__()
        self.branches = nn.ModuleDict({n: Branch(in_chs, ops, width) for n, ops in spec.items()})
        self.out_chs = sum(b.out_chs for b in self.branches.values())

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([b(x) for b in self.branches.values()], dim=1)

    def out_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Spatial output size for an input of `size` (every branch agrees)."""
        return layer_out_size(next(iter(self.branches.values())), size)


class ResidualInceptionBlock(InceptionBlock):
    """`act(x + residual(scale * project(concat(branches))))`, the Inception-ResNet block.

    `project` is the linear 1x1 conv (with bias, no BatchNorm) back to the input width;
    `residual` is an identity kept as the hook point for the scaled residual just before the
    add; `act` is a ReLU, or an identity on IR-v2's last block.
    """

    def __init__(
        self,
        in_chs: int,
        spec: BlockSpec,
        scale: float,
        activate: bool = True,
        width: float = 1.0,
    ) -> None:
        super().__init__(in_chs, spec, width)
        self.scale = scale
        self.project = nn.Conv2d(self.out_chs, in_chs, kernel_size=1)
        self.residual = nn.Identity()
        self.act = nn.ReLU(inplace=True) if activate else nn.Identity()
        self.out_chs = in_chs

    def forward(self, x: Tensor) -> Tensor:
        branches = torch.cat([b(x) for b in self.branches.values()], dim=1)
        return self.act(x + self.residual(self.project(branches) * self.scale))


def iter_blocks(model: nn.Module) -> Iterator[tuple[str, InceptionBlock]]:
    """Yield `(dotted_name, block)` for every Inception block, in forward order."""
    for name, module in model.named_modules():
        if isinstance(module, InceptionBlock):
            yield name, module


def iter_branches(model: nn.Module) -> Iterator[tuple[str, str, Branch]]:
    """Yield `(block_name, branch_name, branch)` for every branch of every block."""
    for block_name, block in iter_blocks(model):
        for branch_name, branch in block.branches.items():
            yield block_name, branch_name, branch


def iter_residual_blocks(model: nn.Module) -> Iterator[tuple[str, ResidualInceptionBlock]]:
    """Yield `(dotted_name, block)` for every residual block, in forward order."""
    for name, block in iter_blocks(model):
        if isinstance(block, ResidualInceptionBlock):
            yield name, block
