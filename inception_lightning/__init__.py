"""Train, watch and explain Inception-family image classifiers with PyTorch Lightning."""

from inception_lightning import models as _models  # noqa: F401  (registers the variants)
from inception_lightning.blocks import (
    InceptionBlock,
    ResidualInceptionBlock,
    iter_blocks,
    iter_branches,
    iter_residual_blocks,
)
from inception_lightning.net import InceptionNet, InputTooSmallError
from inception_lightning.registry import create_model, list_models

__all__ = [
    "InceptionBlock",
    "InceptionNet",
    "InputTooSmallError",
    "ResidualInceptionBlock",
    "create_model",
    "iter_blocks",
    "iter_branches",
    "iter_residual_blocks",
    "list_models",
]
