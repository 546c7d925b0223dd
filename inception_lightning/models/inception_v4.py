"""Inception-v4 (arXiv:1602.07261, Figs. 3-9), laid out as TF-slim and timm build it."""

from __future__ import annotations

from inception_lightning.models.net import Architecture
from inception_lightning.models.specs import BlockSpec, Conv, Fork, Pool, Stage

AVG = Pool("avg", 3, stride=1, padding=1, count_include_pad=False)  # TF-slim's SAME avg pool
MAX = Pool("max", 3, stride=2)


def mixed_3a(stride: int = 2) -> BlockSpec:
    """Stem split: max pool beside a stride-2 conv (Fig. 3)."""
    return {"pool": (Pool("max", 3, stride=stride),), "b3x3": (Conv(96, 3, stride=stride),)}


def mixed_4a() -> BlockSpec:
    """Stem split: a 3x3 beside a factorised 7x7 (Fig. 3)."""
    return {
        "b3x3": (Conv(64), Conv(96, 3)),
        "b7x7": (
            Conv(64),
            Conv(64, (1, 7), padding=(0, 3)),
            Conv(64, (7, 1), padding=(3, 0)),
            Conv(96, 3),
        ),
    }


def mixed_5a() -> BlockSpec:
    """Stem split: stride-2 conv beside a max pool (Fig. 3)."""
    return {"b3x3": (Conv(192, 3, stride=2),), "pool": (MAX,)}


def inception_a() -> BlockSpec:
    """The 35 x 35 block (Fig. 4)."""
    return {
        "b1x1": (Conv(96),),
        "b3x3": (Conv(64), Conv(96, 3, padding=1)),
        "b3x3dbl": (Conv(64), Conv(96, 3, padding=1), Conv(96, 3, padding=1)),
        "pool": (AVG, Conv(96)),
    }


def reduction_a(k: int = 192, l: int = 224, m: int = 256, n: int = 384) -> BlockSpec:  # noqa: E741
    """35 -> 17 reduction (Fig. 7) with the k, l, m, n filter counts of Table 1."""
    return {
        "b3x3": (Conv(n, 3, stride=2),),
        "b3x3dbl": (Conv(k), Conv(l, 3, padding=1), Conv(m, 3, stride=2)),
        "pool": (MAX,),
    }


def inception_b() -> BlockSpec:
    """The 17 x 17 block (Fig. 5)."""
    return {
        "b1x1": (Conv(384),),
        "b7x7": (Conv(192), Conv(224, (1, 7), padding=(0, 3)), Conv(256, (7, 1), padding=(3, 0))),
        "b7x7dbl": (
            Conv(192),
            Conv(192, (7, 1), padding=(3, 0)),
            Conv(224, (1, 7), padding=(0, 3)),
            Conv(224, (7, 1), padding=(3, 0)),
            Conv(256, (1, 7), padding=(0, 3)),
        ),
        "pool": (AVG, Conv(128)),
    }


def reduction_b() -> BlockSpec:
    """17 -> 8 reduction (Fig. 8)."""
    return {
        "b3x3": (Conv(192), Conv(192, 3, stride=2)),
        "b7x7x3": (
            Conv(256),
            Conv(256, (1, 7), padding=(0, 3)),
            Conv(320, (7, 1), padding=(3, 0)),
            Conv(320, 3, stride=2),
        ),
        "pool": (MAX,),
    }


def inception_c() -> BlockSpec:
    """The 8 x 8 block with split 1x3 / 3x1 outputs (Fig. 6)."""
    split = Fork((Conv(256, (1, 3), padding=(0, 1)), Conv(256, (3, 1), padding=(1, 0))))
    return {
        "b1x1": (Conv(256),),
        "b3x3": (Conv(384), split),
        "b3x3dbl": (
            Conv(384),
            Conv(448, (3, 1), padding=(1, 0)),
            Conv(512, (1, 3), padding=(0, 1)),
            split,
        ),
        "pool": (AVG, Conv(256)),
    }


def stem(first_stride: int = 2, split_stride: int = 2) -> tuple[Stage, ...]:
    """Fig. 3's stem; the strides let the low-resolution options of v3 Table 2 apply."""
    return (
        Stage("conv2d_1a_3x3", Conv(32, 3, stride=first_stride)),
        Stage("conv2d_2a_3x3", Conv(32, 3)),
        Stage("conv2d_2b_3x3", Conv(64, 3, padding=1)),
        Stage("mixed_3a", mixed_3a(split_stride)),
        Stage("mixed_4a", mixed_4a()),
        Stage("mixed_5a", mixed_5a()),
    )


INCEPTION_V4 = Architecture(
    stems={
        299: stem(),
        151: stem(first_stride=1),
        # v4's first pool sits inside Mixed_3a beside a conv, so "no pool" becomes stride 1 on
        # both its branches; the grids then match the 79 px v3 stem (73 -> 35 -> 17 -> 8).
        79: stem(first_stride=1, split_stride=1),
    },
    body=(
        *(Stage(f"mixed_5{i}", inception_a()) for i in "bcde"),
        Stage("mixed_6a", reduction_a()),
        *(Stage(f"mixed_6{i}", inception_b()) for i in "bcdefgh"),
        Stage("mixed_7a", reduction_b()),
        *(Stage(f"mixed_7{i}", inception_c()) for i in "bcd"),
    ),
    aux_after="mixed_6h",
    aux_default=False,  # the v4 paper trains without auxiliary heads (Fig. 9)
)
