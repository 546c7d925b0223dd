"""One view of any Inception network: ours (from its specs), timm's and torchvision's (from a
table each). No Lightning.

    >>> anatomy = anatomy_of(timm.create_model("inception_v3"))
    >>> [block.name for block in anatomy.blocks][:2], anatomy.explain
    (['mixed_5b', 'mixed_5c'], ('Mixed_7c',))
"""

from __future__ import annotations

from torch import nn

from inception_lightning.models.anatomy.ours import inception_net_anatomy
from inception_lightning.models.anatomy.table import POOLED, Table
from inception_lightning.models.anatomy.timm_tables import (
    TIMM_INCEPTION_RESNET_V2,
    TIMM_INCEPTION_V3,
    TIMM_INCEPTION_V4,
)
from inception_lightning.models.anatomy.torchvision_tables import TORCHVISION_INCEPTION_V3
from inception_lightning.models.anatomy.view import Anatomy, Block, Site
from inception_lightning.models.net import InceptionNet

TABLES: tuple[Table, ...] = (
    TIMM_INCEPTION_V3,
    TIMM_INCEPTION_V4,
    TIMM_INCEPTION_RESNET_V2,
    TORCHVISION_INCEPTION_V3,
)
KNOWN = ("inception_lightning InceptionNet", *(table.architecture for table in TABLES))


def anatomy_of(network: nn.Module) -> Anatomy | None:
    """The anatomy of `network`, or None when it is no Inception network the package knows
    (ours, or an instance of a class in `TABLES`, subclasses included)."""
    if isinstance(network, InceptionNet):
        return inception_net_anatomy(network)
    for table in TABLES:
        if table.describes(network):
            return table.view(network)
    return None


def is_inception(network: nn.Module) -> bool:
    """Whether `anatomy_of(network)` would give a view (without building it)."""
    return isinstance(network, InceptionNet) or any(t.describes(network) for t in TABLES)


__all__ = [
    "KNOWN",
    "POOLED",
    "TABLES",
    "Anatomy",
    "Block",
    "Site",
    "Table",
    "anatomy_of",
    "is_inception",
]
