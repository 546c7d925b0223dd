"""Train, watch and explain Inception-family image classifiers with PyTorch Lightning.

The networks import eagerly and need no Lightning. The Lightning pieces (`InceptionClassifier`,
`InceptionEMA`, the datamodules, ...) load on first use, so `from inception_lightning import
create_model` never pays for importing Lightning.
"""

from inception_lightning._lazy import lazy_getattr
from inception_lightning.models import (
    InceptionBlock,
    InceptionNet,
    InputTooSmallError,
    ResidualInceptionBlock,
    create_model,
    iter_blocks,
    iter_branches,
    iter_residual_blocks,
    list_models,
)

_LAZY = {
    "InceptionClassifier": "inception_lightning.training",
    "InceptionEMA": "inception_lightning.callbacks",
    "FineTuning": "inception_lightning.callbacks",
    "InceptionRMSprop": "inception_lightning.training",
    "InceptionStepDecay": "inception_lightning.training",
    "ImageFolderDataModule": "inception_lightning.data",
    "SyntheticDataModule": "inception_lightning.data",
}

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
    *_LAZY,
]

__getattr__ = lazy_getattr(__name__, _LAZY)
