"""Training: the LightningModule with the papers' recipe, its optimiser, EMA and checkpoints."""

from inception_lightning.training.checkpoints import (
    AtomicCheckpointIO,
    LoadedNetwork,
    export,
    load_network,
    network_state,
)
from inception_lightning.training.contract import NetworkModule, network_of
from inception_lightning.training.dashboards import TensorBoardDashboards
from inception_lightning.training.ema import InceptionEMA, WarmupEMAModel
from inception_lightning.training.finetuning import FineTuning
from inception_lightning.training.loggers import ExclusiveTensorBoardLogger
from inception_lightning.training.module import CheckpointMismatchError, InceptionClassifier
from inception_lightning.training.optim import InceptionRMSprop, InceptionStepDecay
from inception_lightning.training.progress import LoggingStepProgressBar

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointMismatchError",
    "ExclusiveTensorBoardLogger",
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
]
