"""The anatomy of our `InceptionNet`, read from the blocks its specs built."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from inception_lightning.models.anatomy.view import Anatomy, Block, Site
from inception_lightning.models.blocks import InceptionBlock, ResidualInceptionBlock
from inception_lightning.models.net import InceptionNet


@dataclass(frozen=True)
class InceptionNetAnatomy(Anatomy):
    """Our network's view: its grids follow from its specs, with no forward pass at all."""

    def grids(self, network: nn.Module, size: int | None = None) -> dict[str, tuple[int, int]]:
        """Each stage's output grid (`InceptionNet.spatial_sizes`); a `TypeError` for a layer
        of the user's own, whose geometry no spec gives."""
        return dict(network.spatial_sizes(self.input_size if size is None else size))


def inception_net_anatomy(network: InceptionNet) -> Anatomy:
    """Stages are `features`' children, named by end point; each block's branches are its
    `branches`, observed at their outputs; a residual block's `residual` is the identity hook
    point that sees the scaled residual before the add."""
    stages = {name: f"features.{name}" for name, _ in network.features.named_children()}
    blocks = []
    for name, module in network.features.named_children():
        if not isinstance(module, InceptionBlock):
            continue
        path = f"features.{name}"
        branches = {branch: Site(f"{path}.branches.{branch}") for branch in module.branches}
        residual = isinstance(module, ResidualInceptionBlock)
        blocks.append(
            Block(
                name=name,
                module=path,
                branches=branches,
                residual=Site(f"{path}.residual") if residual else None,
                scale=module.scale if residual else None,
            )
        )
    return InceptionNetAnatomy(
        architecture=f"inception_lightning {network.name}",
        stages=stages,
        blocks=tuple(blocks),
        explain=(blocks[-1].module,) if blocks else (),
        heads=("head",) + (("aux",) if network.aux is not None else ()),
        pre_pool=Site("head", "input"),
        input_size=int(network.stem),
    )
