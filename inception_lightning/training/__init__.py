"""Training: the LightningModule with the papers' recipe, its optimiser, checkpoints, the
contract callbacks rely on, and ensembling.

The Lightning callbacks that lived here (`InceptionEMA`, `FineTuning`, `TensorBoardDashboards`,
`LoggingStepProgressBar`, `WarmupEMAModel`) are in `inception_lightning.callbacks`; their old
paths, which saved `config.yaml` files name, still import with a deprecation warning.
"""

import warnings
from importlib import import_module
from typing import Any

from inception_lightning.training.checkpoints import (
    AtomicCheckpointIO,
    CheckpointMismatchError,
    Description,
    LoadedNetwork,
    load_network,
    network_state,
    read_checkpoint,
    read_description,
)
from inception_lightning.training.contract import (
    FoundNetwork,
    NetworkModule,
    NetworkNotFoundError,
    find_network,
)
from inception_lightning.training.exporter import ExportError, export
from inception_lightning.training.loggers import ExclusiveTensorBoardLogger
from inception_lightning.training.module import InceptionClassifier
from inception_lightning.training.schedule import InceptionStepDecay
from inception_lightning.training.training_options import (
    ComputeOptions,
    InitOptions,
    LossOptions,
    OptimOptions,
)

MOVED_TO_CALLBACKS = (
    "FineTuning",
    "InceptionEMA",
    "LoggingStepProgressBar",
    "TensorBoardDashboards",
    "WarmupEMAModel",
)


def __getattr__(name: str) -> Any:
    """`InceptionRMSprop`, imported on first use (it imports timm: `rmsprop.py`), and the
    callbacks' old paths (`inception_lightning.callbacks.InceptionEMA`), deprecated."""
    if name == "InceptionRMSprop":
        return import_module("inception_lightning.training.rmsprop").InceptionRMSprop
    if name not in MOVED_TO_CALLBACKS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"inception_lightning.training.{name} moved to inception_lightning.callbacks.{name}; "
        "the old path will be removed in 0.3: update the class_path in your config",
        FutureWarning,
        stacklevel=2,
    )
    # imported by name: training/ sits below callbacks/, and only this old path looks up
    return getattr(import_module("inception_lightning.callbacks"), name)


__all__ = [
    "AtomicCheckpointIO",
    "CheckpointMismatchError",
    "ComputeOptions",
    "Description",
    "ExclusiveTensorBoardLogger",
    "ExportError",
    "FoundNetwork",
    "InceptionClassifier",
    "InceptionRMSprop",
    "InceptionStepDecay",
    "InitOptions",
    "LoadedNetwork",
    "LossOptions",
    "NetworkModule",
    "NetworkNotFoundError",
    "OptimOptions",
    "export",
    "find_network",
    "load_network",
    "network_state",
    "read_checkpoint",
    "read_description",
]
