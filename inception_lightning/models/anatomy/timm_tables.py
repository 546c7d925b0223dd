"""timm's Inception networks (`timm.create_model(...)`) in the anatomy's terms."""

from __future__ import annotations

from inception_lightning.models.anatomy.table import POOLED, Table

# Blocks of the v3 family as torchvision wrote them (timm's v3 is a copy): branches by name.
V3_BRANCHES = {
    "InceptionA": {
        "b1x1": "branch1x1",
        "b5x5": "branch5x5_2",
        "b3x3dbl": "branch3x3dbl_3",
        "pool": "branch_pool",
    },
    "InceptionB": {"b3x3": "branch3x3", "b3x3dbl": "branch3x3dbl_3", "pool": POOLED},
    "InceptionC": {
        "b1x1": "branch1x1",
        "b7x7": "branch7x7_3",
        "b7x7dbl": "branch7x7dbl_5",
        "pool": "branch_pool",
    },
    "InceptionD": {"b3x3": "branch3x3_2", "b7x7x3": "branch7x7x3_4", "pool": POOLED},
    "InceptionE": {
        "b1x1": "branch1x1",
        "b3x3": ("branch3x3_2a", "branch3x3_2b"),
        "b3x3dbl": ("branch3x3dbl_3a", "branch3x3dbl_3b"),
        "pool": "branch_pool",
    },
}
V3_BODY = tuple(
    f"Mixed_{grid}{i}" for grid, ids in (("5", "bcd"), ("6", "abcde"), ("7", "abc")) for i in ids
)
V3_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3")
V3_STEM_END = ("Conv2d_3b_1x1", "Conv2d_4a_3x3")

# Departs from the paper as torchvision's v3 does: the branch avg pools count the zero padding
# (TF-slim's do not), Mixed_5b-d keep TF-slim's 5x5 beside the double 3x3 of sect. 3.1, and the
# reduction blocks' max pools and every branch pool are `F.*_pool2d` calls inside `forward`.
TIMM_INCEPTION_V3 = Table(
    architecture="timm inception_v3",
    classes=("timm.models.inception_v3.InceptionV3",),
    stages={
        **{name.lower(): name for name in V3_STEM},
        "maxpool_3a_3x3": "Pool1",
        **{name.lower(): name for name in V3_STEM_END},
        "maxpool_5a_3x3": "Pool2",
        **{name.lower(): name for name in V3_BODY},
    },
    branches=V3_BRANCHES,
    explain=("Mixed_7c",),
    heads=("fc", "AuxLogits"),
    pre_pool="global_pool",
)

# Follows the paper's Figs. 3-9 (TF-slim's layout); only its branch names are positional
# (`branch0`..`branch3`, `branch1_1a`) rather than by receptive field, and its stages are the
# indices of one `features` sequence.
V4_STAGES = (
    "conv2d_1a_3x3",
    "conv2d_2a_3x3",
    "conv2d_2b_3x3",
    *(
        f"mixed_{grid}{i}"
        for grid, ids in (("3", "a"), ("4", "a"), ("5", "abcde"), ("6", "abcdefgh"), ("7", "abcd"))
        for i in ids
    ),
)
FOUR = {"b1x1": "branch0", "b3x3": "branch1", "b3x3dbl": "branch2", "pool": "branch3"}
TIMM_INCEPTION_V4 = Table(
    architecture="timm inception_v4",
    classes=("timm.models.inception_v4.InceptionV4",),
    stages={name: f"features.{i}" for i, name in enumerate(V4_STAGES)},
    branches={
        "Mixed3a": {"pool": "maxpool", "b3x3": "conv"},
        "Mixed4a": {"b3x3": "branch0", "b7x7": "branch1"},
        "Mixed5a": {"b3x3": "conv", "pool": "maxpool"},
        "InceptionA": FOUR,
        "ReductionA": {"b3x3": "branch0", "b3x3dbl": "branch1", "pool": "branch2"},
        "InceptionB": {
            "b1x1": "branch0",
            "b7x7": "branch1",
            "b7x7dbl": "branch2",
            "pool": "branch3",
        },
        "ReductionB": {"b3x3": "branch0", "b7x7x3": "branch1", "pool": "branch2"},
        "InceptionC": {
            "b1x1": "branch0",
            "b3x3": ("branch1_1a", "branch1_1b"),
            "b3x3dbl": ("branch2_3a", "branch2_3b"),
            "pool": "branch3",
        },
    },
    explain=("features.21",),
    heads=("last_linear",),
    pre_pool="global_pool",
)

# Departs from the paper as TF-slim does: v3's stem and a Mixed_5b block in place of Fig. 3's
# stem, and a last Block8 with scale 1.0 and no ReLU before a 1x1 conv to 1536 features; its
# residual blocks compute `conv2d(branches) * scale + x` inline (the projection is observed
# and scaled), and its stages are named by position (`repeat.0`, `repeat_1.3`, ...).
TIMM_INCEPTION_RESNET_V2 = Table(
    architecture="timm inception_resnet_v2",
    classes=("timm.models.inception_resnet_v2.InceptionResnetV2",),
    stages={
        "conv2d_1a_3x3": "conv2d_1a",
        "conv2d_2a_3x3": "conv2d_2a",
        "conv2d_2b_3x3": "conv2d_2b",
        "maxpool_3a_3x3": "maxpool_3a",
        "conv2d_3b_1x1": "conv2d_3b",
        "conv2d_4a_3x3": "conv2d_4a",
        "maxpool_5a_3x3": "maxpool_5a",
        "mixed_5b": "mixed_5b",
        **{f"block35_{i + 1}": f"repeat.{i}" for i in range(10)},
        "mixed_6a": "mixed_6a",
        **{f"block17_{i + 1}": f"repeat_1.{i}" for i in range(20)},
        "mixed_7a": "mixed_7a",
        **{f"block8_{i + 1}": f"repeat_2.{i}" for i in range(9)},
        "block8_10": "block8",
        "conv2d_7b_1x1": "conv2d_7b",
    },
    branches={
        "Mixed_5b": {"b1x1": "branch0", "b5x5": "branch1", "b3x3dbl": "branch2", "pool": "branch3"},
        "Block35": {"b1x1": "branch0", "b3x3": "branch1", "b3x3dbl": "branch2"},
        "Mixed_6a": {"b3x3": "branch0", "b3x3dbl": "branch1", "pool": "branch2"},
        "Block17": {"b1x1": "branch0", "b7x7": "branch1"},
        "Mixed_7a": {
            "b3x3a": "branch0",
            "b3x3b": "branch1",
            "b3x3dbl": "branch2",
            "pool": "branch3",
        },
        "Block8": {"b1x1": "branch0", "b3x3": "branch1"},
    },
    projections={"Block35": "conv2d", "Block17": "conv2d", "Block8": "conv2d"},
    explain=("block8",),
    heads=("classif",),
    pre_pool="global_pool",
)
