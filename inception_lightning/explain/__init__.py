"""Grad-CAM maps, attribution metrics and attribution reports."""

from inception_lightning.explain.analysis import (
    Explanation,
    balanced_sample,
    dataset_labels,
    explain,
    load,
    predict,
    summarize,
)
from inception_lightning.explain.gradcam import GradCAM, default_layer, eval_mode, layer_grids
from inception_lightning.explain.metrics import (
    auc,
    blur,
    boxes_to_masks,
    deletion_auc,
    energy_pointing_game,
    insertion_auc,
    perturbation_curve,
    pointing_game,
    scaled_tolerance,
)
from inception_lightning.explain.report import safe_name, write_report

__all__ = [
    "Explanation",
    "GradCAM",
    "auc",
    "balanced_sample",
    "blur",
    "boxes_to_masks",
    "dataset_labels",
    "default_layer",
    "deletion_auc",
    "energy_pointing_game",
    "eval_mode",
    "explain",
    "insertion_auc",
    "layer_grids",
    "load",
    "perturbation_curve",
    "pointing_game",
    "predict",
    "safe_name",
    "scaled_tolerance",
    "summarize",
    "write_report",
]
