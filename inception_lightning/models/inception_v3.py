"""Inception-v3 (arXiv:1512.00567), laid out as TF-slim and timm build it."""

from __future__ import annotations

from inception_lightning.models.net import Architecture, low_resolution_stems
from inception_lightning.models.specs import BlockSpec, Conv, Fork, Pool, Stage

# timm (from torchvision) pads its branch avg pools with zeros that count in the mean,
# where TF-slim's SAME pooling does not; we follow timm so its weights give the same logits.
AVG = Pool("avg", 3, stride=1, padding=1, count_include_pad=True)
MAX = Pool("max", 3, stride=2)


def inception_a(pool_chs: int) -> BlockSpec:
    """Mixed_5b..5d: the 5x5 kept as in TF-slim, the double 3x3 of sect. 3.1 beside it."""
    return {
        "b1x1": (Conv(64),),
        "b5x5": (Conv(48), Conv(64, 5, padding=2)),
        "b3x3dbl": (Conv(64), Conv(96, 3, padding=1), Conv(96, 3, padding=1)),
        "pool": (AVG, Conv(pool_chs)),
    }


def reduction_a() -> BlockSpec:
    """Mixed_6a: grid reduction 35 -> 17 with parallel stride-2 branches (sect. 5, Fig. 10)."""
    return {
        "b3x3": (Conv(384, 3, stride=2),),
        "b3x3dbl": (Conv(64), Conv(96, 3, padding=1), Conv(96, 3, stride=2)),
        "pool": (MAX,),
    }


def inception_b(mid_chs: int) -> BlockSpec:
    """Mixed_6b..6e: n x n factorised into 1 x 7 and 7 x 1 (sect. 3.2, Fig. 6)."""
    return {
        "b1x1": (Conv(192),),
        "b7x7": (
            Conv(mid_chs),
            Conv(mid_chs, (1, 7), padding=(0, 3)),
            Conv(192, (7, 1), padding=(3, 0)),
        ),
        "b7x7dbl": (
            Conv(mid_chs),
            Conv(mid_chs, (7, 1), padding=(3, 0)),
            Conv(mid_chs, (1, 7), padding=(0, 3)),
            Conv(mid_chs, (7, 1), padding=(3, 0)),
            Conv(192, (1, 7), padding=(0, 3)),
        ),
        "pool": (AVG, Conv(192)),
    }


def reduction_b() -> BlockSpec:
    """Mixed_7a: grid reduction 17 -> 8."""
    return {
        "b3x3": (Conv(192), Conv(320, 3, stride=2)),
        "b7x7x3": (
            Conv(192),
            Conv(192, (1, 7), padding=(0, 3)),
            Conv(192, (7, 1), padding=(3, 0)),
            Conv(192, 3, stride=2),
        ),
        "pool": (MAX,),
    }


def inception_c() -> BlockSpec:
    """Mixed_7b, 7c: expanded filter banks on the 8 x 8 grid (sect. 6, Fig. 7)."""
    split = Fork((Conv(384, (1, 3), padding=(0, 1)), Conv(384, (3, 1), padding=(1, 0))))
    return {
        "b1x1": (Conv(320),),
        "b3x3": (Conv(384), split),
        "b3x3dbl": (Conv(448), Conv(384, 3, padding=1), split),
        "pool": (AVG, Conv(192)),
    }


STEM = (
    Stage("conv2d_1a_3x3", Conv(32, 3, stride=2)),
    Stage("conv2d_2a_3x3", Conv(32, 3)),
    Stage("conv2d_2b_3x3", Conv(64, 3, padding=1)),
    Stage("maxpool_3a_3x3", MAX),
    Stage("conv2d_3b_1x1", Conv(80)),
    Stage("conv2d_4a_3x3", Conv(192, 3)),
    Stage("maxpool_5a_3x3", MAX),
)
STEMS = low_resolution_stems(STEM, first_pool="maxpool_3a_3x3")

BODY = (
    Stage("mixed_5b", inception_a(32)),
    Stage("mixed_5c", inception_a(64)),
    Stage("mixed_5d", inception_a(64)),
    Stage("mixed_6a", reduction_a()),
    Stage("mixed_6b", inception_b(128)),
    Stage("mixed_6c", inception_b(160)),
    Stage("mixed_6d", inception_b(160)),
    Stage("mixed_6e", inception_b(192)),
    Stage("mixed_7a", reduction_b()),
    Stage("mixed_7b", inception_c()),
    Stage("mixed_7c", inception_c()),
)

INCEPTION_V3 = Architecture(
    stems=STEMS,
    body=BODY,
    aux_after="mixed_6e",
    aux_default=True,
)
