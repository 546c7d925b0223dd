"""Callbacks that watch and explain Inception networks while they train."""

from inception_lightning.callbacks.branch_stats import BranchActivationStats
from inception_lightning.callbacks.dying_residual import DyingResidualDetector, DyingResidualError
from inception_lightning.callbacks.grad_cam import GradCam
from inception_lightning.callbacks.host_sync import HostSync, HostSyncAudit
from inception_lightning.callbacks.non_finite import NonFiniteError, NonFiniteGuard
from inception_lightning.callbacks.predictions import PredictionWriter

__all__ = [
    "BranchActivationStats",
    "DyingResidualDetector",
    "DyingResidualError",
    "GradCam",
    "HostSync",
    "HostSyncAudit",
    "NonFiniteError",
    "NonFiniteGuard",
    "PredictionWriter",
]
