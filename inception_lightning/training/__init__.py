"""Training: the LightningModule with the papers' recipe, its optimiser, EMA and checkpoints."""

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
from inception_lightning.training.contract import NetworkModule, network_of
from inception_lightning.training.dashboards import TensorBoardDashboards
from inception_lightning.training.ema import InceptionEMA, WarmupEMAModel
from inception_lightning.training.export import ExportError, export
from inception_lightning.training.finetuning import FineTuning
from inception_lightning.training.loggers import ExclusiveTensorBoardLogger
from inception_lightning.training.module import InceptionClassifier
from inception_lightning.training.optim import InceptionRMSprop, InceptionStepDecay
from inception_lightning.training.progress import LoggingStepProgressBar

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointMismatchError",
    "Description",
    "ExclusiveTensorBoardLogger",
    "ExportError",
    "FineTuning",
    "InceptionClassifier",
    "InceptionEMA",
    "InceptionRMSprop",
    "InceptionStepDecay",
    "LoadedNetwork",
    "LoggingStepProgressBar",
    "NetworkModule",
    "TensorBoardDashboards",
    "WarmupEMAModel",
    "export",
    "load_network",
    "network_of",
    "network_state",
    "read_checkpoint",
    "read_description",
]
