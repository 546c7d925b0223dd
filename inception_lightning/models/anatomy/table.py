"""`Table`: how one foreign Inception architecture maps onto the `Anatomy` view.

A table names, for the network's class, its stages by end point, the branches of each kind
of block (by the block's class name), the projection of its residual blocks, the heads and the
layer to explain. Branches are given as

- a module name in the block: the branch is that module's output;
- a tuple of module names: the branch is their outputs concatenated (v3's split 1x3 / 3x1
  filter banks), observed as that channel slice of the block's output;
- `POOLED`: a pool computed inside the block's `forward` with no module after it (the
  reduction blocks' `F.max_pool2d` of timm's and torchvision's v3), observed as the remaining
  channels of the block's output.

A pool computed inside `forward` but followed by a conv (their v3's `branch_pool`) is named by
that conv: its output is the branch's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import nn

from inception_lightning.models.anatomy.view import Anatomy, Block, Site

POOLED = "<pooled inside forward>"

BranchRef = str | tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """One foreign architecture's map onto the anatomy.

    Args:
        architecture: what it is, e.g. "timm inception_v3".
        classes: the network classes it describes, as `module.QualName` (subclasses match).
        stages: end-point name -> dotted module name, in forward order.
        branches: block class name -> branch name -> `BranchRef` or `POOLED`, in the order
            the block concatenates them.
        explain: the default Grad-CAM layer(s).
        heads: the classifier (first) and the aux head; absent ones (None attributes) skipped.
        pre_pool: the module whose first input is the pre-pool feature map (the global pool).
        projections: residual block class name -> its projection conv, whose output the block
            scales by its `scale` attribute and adds to its input inline.
        input_size: the input size the network is built for.
    """

    architecture: str
    classes: tuple[str, ...]
    stages: Mapping[str, str]
    branches: Mapping[str, Mapping[str, BranchRef]]
    explain: tuple[str, ...]
    heads: tuple[str, ...]
    pre_pool: str
    projections: Mapping[str, str] = field(default_factory=dict)
    input_size: int = 299

    def describes(self, network: nn.Module) -> bool:
        """Whether `network` is an instance of one of `classes` (or of a subclass)."""
        names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(network).__mro__}
        return not names.isdisjoint(self.classes)

    def view(self, network: nn.Module) -> Anatomy:
        """The anatomy of `network`, an instance of this table's architecture."""
        blocks = []
        for stage, path in self.stages.items():
            module = network.get_submodule(path)
            kind = type(module).__name__
            if kind in self.branches:
                blocks.append(self._block(stage, path, module, kind))
        heads = tuple(h for h in self.heads if isinstance(getattr(network, h, None), nn.Module))
        return Anatomy(
            architecture=self.architecture,
            stages=dict(self.stages),
            blocks=tuple(blocks),
            explain=self.explain,
            heads=heads,
            pre_pool=Site(self.pre_pool, "input"),
            input_size=self.input_size,
        )

    def _block(self, stage: str, path: str, block: nn.Module, kind: str) -> Block:
        branches = {}
        offset: int | None = 0  # the branch's first channel in the block's concatenation
        for name, ref in self.branches[kind].items():
            parts = () if ref == POOLED else (ref,) if isinstance(ref, str) else ref
            width = _out_channels(block, parts)
            if len(parts) == 1:
                branches[name] = Site(f"{path}.{parts[0]}")
            elif offset is None:
                raise ValueError(f"{self.architecture} table: {kind}.{name} follows a pool module")
            else:
                stop = None if ref == POOLED else offset + width
                branches[name] = Site(path, channels=(offset, stop))
            offset = None if offset is None or width is None else offset + width
        projection = self.projections.get(kind)
        if projection is None:
            return Block(stage, path, branches)
        scale = float(block.scale)
        return Block(stage, path, branches, Site(f"{path}.{projection}", scale=scale), scale)


def _out_channels(block: nn.Module, parts: tuple[str, ...]) -> int | None:
    """Channels the named modules of `block` output, those of each one's last conv; None for a
    module without a conv (a bare pool keeps its input's channels, unknown here)."""
    total = 0
    for part in parts:
        convs = [m for m in block.get_submodule(part).modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            return None
        total += convs[-1].out_channels
    return total
