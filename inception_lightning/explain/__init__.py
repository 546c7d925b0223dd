"""Attribution maps, their metrics, the explainer pipeline and reports. Imports no Lightning."""

from inception_lightning.explain.explainer import (
    Batch,
    Explainer,
    Explanation,
    balanced_sample,
    explain,
    load,
    predict,
    summarize,
)
from inception_lightning.explain.gradcam import GradCAM, default_layer, eval_mode
from inception_lightning.explain.metrics import (
    auc,
    blur,
    boxes_to_masks,
    deletion_auc,
    deletion_curve,
    energy_pointing_game,
    insertion_auc,
    insertion_curve,
    perturbation_curve,
    pointing_game,
    scaled_tolerance,
)
from inception_lightning.explain.precision import Bf16Forward, fp32
from inception_lightning.explain.predictions import Predictions, Reliability, predict_dataset
from inception_lightning.explain.report import safe_name, write_report

__all__ = [
    "Batch",
    "Bf16Forward",
    "Explainer",
    "Explanation",
    "GradCAM",
    "Predictions",
    "Reliability",
    "auc",
    "balanced_sample",
    "blur",
    "boxes_to_masks",
    "default_layer",
    "deletion_auc",
    "deletion_curve",
    "energy_pointing_game",
    "eval_mode",
    "explain",
    "fp32",
    "insertion_auc",
    "insertion_curve",
    "load",
    "perturbation_curve",
    "pointing_game",
    "predict",
    "predict_dataset",
    "safe_name",
    "scaled_tolerance",
    "summarize",
    "write_report",
]
