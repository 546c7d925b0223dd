"""Inception-ResNet-v1 and -v2 (arXiv:1602.07261): the same blocks, different tables.

IR-v2 follows TF-slim and timm (whose weights it loads); IR-v1, which neither ships, follows
the paper's Figs. 7 and 10-14.
"""

from __future__ import annotations

from inception_lightning.models.inception_v3 import STEM as V3_STEM
from inception_lightning.models.inception_v3 import STEMS as V3_STEMS
from inception_lightning.models.inception_v4 import reduction_a
from inception_lightning.models.net import Architecture, low_resolution_stems
from inception_lightning.models.specs import BlockSpec, Conv, Pool, Stage

# The paper's residual scales per grid (sect. 3.3, as TF-slim sets them).
SCALE_35, SCALE_17, SCALE_8 = 0.17, 0.10, 0.20
MAX = Pool("max", 3, stride=2)


def block35(b3x3_chs: tuple[int, int], b3x3dbl_chs: tuple[int, int, int]) -> BlockSpec:
    """Inception-ResNet-A, the 35 x 35 residual block (v1 Fig. 10, v2 Fig. 16)."""
    return {
        "b1x1": (Conv(32),),
        "b3x3": (Conv(b3x3_chs[0]), Conv(b3x3_chs[1], 3, padding=1)),
        "b3x3dbl": (
            Conv(b3x3dbl_chs[0]),
            Conv(b3x3dbl_chs[1], 3, padding=1),
            Conv(b3x3dbl_chs[2], 3, padding=1),
        ),
    }


def block17(b1x1_chs: int, b7x7_chs: tuple[int, int, int]) -> BlockSpec:
    """Inception-ResNet-B, the 17 x 17 residual block (v1 Fig. 11, v2 Fig. 17)."""
    return {
        "b1x1": (Conv(b1x1_chs),),
        "b7x7": (
            Conv(b7x7_chs[0]),
            Conv(b7x7_chs[1], (1, 7), padding=(0, 3)),
            Conv(b7x7_chs[2], (7, 1), padding=(3, 0)),
        ),
    }


def block8(b3x3_chs: tuple[int, int, int]) -> BlockSpec:
    """Inception-ResNet-C, the 8 x 8 residual block (v1 Fig. 13, v2 Fig. 19)."""
    return {
        "b1x1": (Conv(192),),
        "b3x3": (
            Conv(b3x3_chs[0]),
            Conv(b3x3_chs[1], (1, 3), padding=(0, 1)),
            Conv(b3x3_chs[2], (3, 1), padding=(1, 0)),
        ),
    }


def reduction_b(b3x3a: int, b3x3b: int, b3x3dbl: tuple[int, int]) -> BlockSpec:
    """17 -> 8 reduction (v1 Fig. 12, v2 Fig. 18): three stride-2 conv branches and a pool."""
    return {
        "b3x3a": (Conv(256), Conv(b3x3a, 3, stride=2)),
        "b3x3b": (Conv(256), Conv(b3x3b, 3, stride=2)),
        "b3x3dbl": (Conv(256), Conv(b3x3dbl[0], 3, padding=1), Conv(b3x3dbl[1], 3, stride=2)),
        "pool": (MAX,),
    }


def mixed_5b() -> BlockSpec:
    """IR-v2's 35 x 35 entry block (TF-slim's Mixed_5b; the paper's Fig. 3 stem differs)."""
    return {
        "b1x1": (Conv(96),),
        "b5x5": (Conv(48), Conv(64, 5, padding=2)),
        "b3x3dbl": (Conv(64), Conv(96, 3, padding=1), Conv(96, 3, padding=1)),
        "pool": (Pool("avg", 3, stride=1, padding=1, count_include_pad=False), Conv(64)),
    }


# Fig. 14: v3's stem, with a stride-2 conv to 256 channels in place of its last max pool.
V1_STEM = (*V3_STEM[:-1], Stage("conv2d_4b_3x3", Conv(256, 3, stride=2)))

INCEPTION_RESNET_V1 = Architecture(
    stems=low_resolution_stems(V1_STEM, first_pool="maxpool_3a_3x3"),
    body=(
        Stage("block35", block35((32, 32), (32, 32, 32)), repeats=5, residual_scale=SCALE_35),
        Stage("mixed_6a", reduction_a(k=192, l=192, m=256, n=384)),
        Stage("block17", block17(128, (128, 128, 128)), repeats=10, residual_scale=SCALE_17),
        Stage("mixed_7a", reduction_b(384, 256, (256, 256))),
        Stage("block8", block8((192, 192, 192)), repeats=5, residual_scale=SCALE_8),
    ),
    aux_after="block17_10",
    aux_default=False,  # the paper trains Inception-ResNet without auxiliary heads
)

INCEPTION_RESNET_V2 = Architecture(
    stems=V3_STEMS,  # TF-slim's IR-v2 stem is v3's
    body=(
        Stage("mixed_5b", mixed_5b()),
        Stage("block35", block35((32, 32), (32, 48, 64)), repeats=10, residual_scale=SCALE_35),
        Stage("mixed_6a", reduction_a(k=256, l=256, m=384, n=384)),
        Stage("block17", block17(192, (128, 160, 192)), repeats=20, residual_scale=SCALE_17),
        Stage("mixed_7a", reduction_b(384, 288, (288, 320))),
        Stage("block8", block8((192, 224, 256)), repeats=9, residual_scale=SCALE_8),
        # TF-slim's final Block8: scale 1.0 and no ReLU, then a 1x1 conv to 1536 features.
        Stage("block8_10", block8((192, 224, 256)), residual_scale=1.0, activate=False),
        Stage("conv2d_7b_1x1", Conv(1536)),
    ),
    aux_after="block17_20",
    aux_default=False,  # the paper trains Inception-ResNet without auxiliary heads
)
