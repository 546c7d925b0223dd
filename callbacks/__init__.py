"""Every Lightning callback of the package: training (EMA, fine-tuning, TensorBoard tabs, the
progress bar), diagnostics that watch and explain Inception networks while they train, and
prediction files."""

from inception_lightning.callbacks.branch_stats import BranchActivationStats
from inception_lightning.callbacks.dashboards import TensorBoardDashboards
from inception_lightning.callbacks.dying_residual import DyingResidualDetector, DyingResidualError
from inception_lightning.callbacks.ema import InceptionEMA, WarmupEMAModel
from inception_lightning.callbacks.finetuning import FineTuning
from inception_lightning.callbacks.grad_cam import GradCam
from inception_lightning.callbacks.host_sync import HostSync, HostSyncAudit
from inception_lightning.callbacks.lr_range_test import LearningRateRangeTest
from inception_lightning.callbacks.non_finite import NonFiniteError, NonFiniteGuard
from inception_lightning.callbacks.prediction_writer import PredictionWriter
from inception_lightning.callbacks.progress_bar import LoggingStepProgressBar

__all__ = [
    "BranchActivationStats",
    "DyingResidualDetector",
    "DyingResidualError",
    "FineTuning",
    "GradCam",
    "HostSync",
    "HostSyncAudit",
    "InceptionEMA",
    "LearningRateRangeTest",
    "LoggingStepProgressBar",
    "NonFiniteError",
    "NonFiniteGuard",
    "PredictionWriter",
    "TensorBoardDashboards",
    "WarmupEMAModel",
]
