"""`Anatomy`: one view of any Inception network, in the papers' terms.

A view names the network's stages by the paper's (TF-slim's) end points, its Inception blocks
with their branches by receptive field (`b1x1`, `b3x3dbl`, `pool`, ...), where each branch's
output and each residual block's scaled residual can be observed (`Site`), the default layers
to explain, the classifier heads and the pre-pool feature map. Callbacks ask for the view and
never for the network's class.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

Side = Literal["input", "output"]


@dataclass(frozen=True)
class Site:
    """Where one activation is observed: a module's output (or first input), or a channel slice
    of it, times a scale.

    Attributes:
        module: dotted name of the module in the network.
        side: "output", or "input" for the module's first input.
        channels: `(start, stop)` on dim 1 (`stop` None: to the end); None: every channel.
        scale: what is observed is multiplied by it (a residual that is scaled inline).
    """

    module: str
    side: Side = "output"
    channels: tuple[int, int | None] | None = None
    scale: float = 1.0

    def select(self, x: Tensor) -> Tensor:
        """The observed part of the module's tensor `x`, before the scale: a channel slice is
        copied into a tensor of its own, which reductions sum in the same order as a branch
        output that is a tensor of its own (a strided view would round differently)."""
        if self.channels is None:
            return x
        start, stop = self.channels
        return x[:, start:stop].contiguous()


@dataclass(frozen=True)
class Block:
    """One Inception block.

    Attributes:
        name: its end-point name in the paper / TF-slim (`mixed_6b`, `block17_3`).
        module: its dotted name in the network.
        branches: branch name -> where the branch's output is observed, in concatenation order.
        residual: for a residual block, the scaled residual just before the add; else None.
        scale: the residual's scale (None for a plain block).
    """

    name: str
    module: str
    branches: Mapping[str, Site]
    residual: Site | None = None
    scale: float | None = None


@dataclass(frozen=True)
class Anatomy:
    """An Inception network as the callbacks see it.

    Attributes:
        architecture: what the network is, e.g. "timm inception_v3".
        stages: end-point name -> dotted module name, in forward order (stem layers too).
        blocks: the Inception blocks, in forward order.
        explain: the default layer(s) for Grad-CAM: the last Inception block.
        heads: dotted names of the classifier (first) and of the auxiliary head, if any; the
            rest of the network is the backbone.
        pre_pool: the feature map that the head's global average pool reduces.
        input_size: the input size the network is built for (the grids are named at it).
    """

    architecture: str
    stages: Mapping[str, str]
    blocks: tuple[Block, ...]
    explain: tuple[str, ...]
    heads: tuple[str, ...]
    pre_pool: Site
    input_size: int

    @property
    def residual_blocks(self) -> tuple[Block, ...]:
        """The residual blocks, in forward order."""
        return tuple(block for block in self.blocks if block.residual is not None)

    def backbone_parameters(self, network: nn.Module) -> Iterator[nn.Parameter]:
        """Every parameter of `network` outside its heads."""
        heads = tuple(f"{head}." for head in self.heads)
        for name, parameter in network.named_parameters():
            if not name.startswith(heads):
                yield parameter

    def grids(self, network: nn.Module, size: int | None = None) -> dict[str, tuple[int, int]]:
        """Each stage's output grid for a `size` x `size` input (default `input_size`), by
        end-point name.

        The sizes come from a forward pass on the meta device: shapes only, no arithmetic, and
        the network's own tensors are neither read nor changed (forward hooks registered on the
        network see that pass's meta tensors).
        """
        size = self.input_size if size is None else size
        shapes: dict[str, tuple[int, int]] = {}
        handles = [
            network.get_submodule(module).register_forward_hook(partial(_shape, shapes, stage))
            for stage, module in self.stages.items()
        ]
        flags = [(m, m.training) for m in network.modules()]
        meta = {name: t.to("meta") for name, t in _tensors(network)}
        x = torch.empty(1, _in_chans(network), size, size, device="meta")
        try:
            network.eval()
            with torch.no_grad():
                functional_call(network, meta, (x,))
        finally:
            for handle in handles:
                handle.remove()
            for module, training in flags:
                module.training = training
        return shapes


def _shape(
    shapes: dict[str, tuple[int, int]], stage: str, module: nn.Module, args: Any, out: Tensor
) -> None:
    shapes[stage] = (int(out.shape[-2]), int(out.shape[-1]))


def _tensors(network: nn.Module) -> Iterator[tuple[str, Tensor]]:
    yield from network.named_parameters()
    yield from network.named_buffers()


def _in_chans(network: nn.Module) -> int:
    return next(m for m in network.modules() if isinstance(m, nn.Conv2d)).in_channels
