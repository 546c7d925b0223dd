"""torchvision's Inception-v3 (`torchvision.models.inception_v3`) in the anatomy's terms."""

from __future__ import annotations

from inception_lightning.models.anatomy.table import Table
from inception_lightning.models.anatomy.timm_tables import (
    V3_BODY,
    V3_BRANCHES,
    V3_STEM,
    V3_STEM_END,
)

# timm's v3 is a copy of this one, with the same departures from the paper (pools that count
# the padding, TF-slim's 5x5 in Mixed_5b-d, pools as `F.*_pool2d` calls); besides, with
# `transform_input=True` (the default with ImageNet weights) it re-normalises its input from
# ImageNet's mean and std to TF's [-1, 1] first.
TORCHVISION_INCEPTION_V3 = Table(
    architecture="torchvision inception_v3",
    classes=("torchvision.models.inception.Inception3",),
    stages={
        **{name.lower(): name for name in V3_STEM},
        "maxpool_3a_3x3": "maxpool1",
        **{name.lower(): name for name in V3_STEM_END},
        "maxpool_5a_3x3": "maxpool2",
        **{name.lower(): name for name in V3_BODY},
    },
    branches=V3_BRANCHES,
    explain=("Mixed_7c",),
    heads=("fc", "AuxLogits"),
    pre_pool="avgpool",
)
