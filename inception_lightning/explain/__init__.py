"""Attribution maps, their metrics and sanity checks, the explainer pipeline and reports.

Imports no Lightning.
"""

from inception_lightning.explain.attribution import (
    Attribution,
    default_layer,
    empty_maps,
    eval_mode,
    normalize_maps,
)
from inception_lightning.explain.cam import (
    GradCAMMap,
    GuidedGradCAMMap,
    HiResCAMMap,
    LayerCAMMap,
    fuse,
)
from inception_lightning.explain.comparison import MethodRun, run_methods
from inception_lightning.explain.explain_options import (
    MapOptions,
    ReportOptions,
    SampleOptions,
    SanityOptions,
    ScoreOptions,
)
from inception_lightning.explain.explainer import (
    Batch,
    Explainer,
    Explanation,
    balanced_sample,
    explain_batch,
    load_batch,
    predict_probs,
    summarize_explanation,
)
from inception_lightning.explain.html_report import safe_name, write_report
from inception_lightning.explain.methods import (
    LAYER_METHODS,
    METHODS,
    Method,
    as_methods,
    make_attribution,
)
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
from inception_lightning.explain.numerics import Bf16Forward, fp32
from inception_lightning.explain.pipeline import ExplainSpec, build_report
from inception_lightning.explain.pixel import IntegratedGradientsMap, OcclusionMap
from inception_lightning.explain.predictions import Predictions, Reliability, predict_dataset
from inception_lightning.explain.sanity import (
    RANK_THRESHOLD,
    RandomizationCurve,
    cascade_units,
    cascading_randomization,
    rank_correlation,
)

__all__ = [
    "LAYER_METHODS",
    "METHODS",
    "RANK_THRESHOLD",
    "Attribution",
    "Batch",
    "Bf16Forward",
    "ExplainSpec",
    "Explainer",
    "Explanation",
    "GradCAMMap",
    "GuidedGradCAMMap",
    "HiResCAMMap",
    "IntegratedGradientsMap",
    "LayerCAMMap",
    "MapOptions",
    "Method",
    "MethodRun",
    "OcclusionMap",
    "Predictions",
    "RandomizationCurve",
    "Reliability",
    "ReportOptions",
    "SampleOptions",
    "SanityOptions",
    "ScoreOptions",
    "as_methods",
    "auc",
    "balanced_sample",
    "blur",
    "boxes_to_masks",
    "build_report",
    "cascade_units",
    "cascading_randomization",
    "default_layer",
    "deletion_auc",
    "deletion_curve",
    "empty_maps",
    "energy_pointing_game",
    "eval_mode",
    "explain_batch",
    "fp32",
    "fuse",
    "insertion_auc",
    "insertion_curve",
    "load_batch",
    "make_attribution",
    "normalize_maps",
    "perturbation_curve",
    "pointing_game",
    "predict_dataset",
    "predict_probs",
    "rank_correlation",
    "run_methods",
    "safe_name",
    "scaled_tolerance",
    "summarize_explanation",
    "write_report",
]
