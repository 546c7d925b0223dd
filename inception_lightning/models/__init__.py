"""The networks: declarative specs, generic blocks, the four registered variants. No Lightning."""

from typing import Literal

from inception_lightning.models.anatomy import Anatomy, anatomy_of
from inception_lightning.models.blocks import (
    InceptionBlock,
    ResidualInceptionBlock,
    iter_blocks,
    iter_branches,
    iter_residual_blocks,
)
from inception_lightning.models.inception_resnet import INCEPTION_RESNET_V1, INCEPTION_RESNET_V2
from inception_lightning.models.inception_v3 import INCEPTION_V3
from inception_lightning.models.inception_v4 import INCEPTION_V4
from inception_lightning.models.net import Architecture, InceptionNet, InputTooSmallError
from inception_lightning.models.options import ModelOptions, Stem
from inception_lightning.models.registry import create_model, list_models, register_model

register_model("inception_v3", INCEPTION_V3, timm_name="inception_v3.tf_in1k")
register_model("inception_v4", INCEPTION_V4, timm_name="inception_v4.tf_in1k")
register_model("inception_resnet_v1", INCEPTION_RESNET_V1)
register_model("inception_resnet_v2", INCEPTION_RESNET_V2, timm_name="inception_resnet_v2.tf_in1k")

# The names registered above, as a type: the CLI lists them as the choices of --model.model.
ModelName = Literal[tuple(list_models())]  # type: ignore[valid-type]

__all__ = [
    "Anatomy",
    "Architecture",
    "InceptionBlock",
    "InceptionNet",
    "InputTooSmallError",
    "ModelName",
    "ModelOptions",
    "ResidualInceptionBlock",
    "Stem",
    "anatomy_of",
    "create_model",
    "iter_blocks",
    "iter_branches",
    "iter_residual_blocks",
    "list_models",
    "register_model",
]
