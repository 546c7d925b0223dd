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
from inception_lightning.explain.checks import CHEAP_CHECKS, CHECKS, meaning, run_checks
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
from inception_lightning.explain.imputation import linear_imputation, noisy_linear_imputation
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
from inception_lightning.explain.mprt import NoiseAveraged, efficient_mprt, smooth_mprt
from inception_lightning.explain.numerics import Bf16Forward, fp32
from inception_lightning.explain.pipeline import ExplainSpec, build_report
from inception_lightning.explain.pixel import IntegratedGradientsMap, OcclusionMap
from inception_lightning.explain.predictions import Predictions, Reliability, predict_dataset
from inception_lightning.explain.random_logit import random_logit
from inception_lightning.explain.randomization import (
    ORDERS,
    cascade_units,
    fully_randomized,
    randomized_models,
)
from inception_lightning.explain.road import RoadCurves, road_check, road_curves
from inception_lightning.explain.sanity import (
    RANK_THRESHOLD,
    model_randomization,
    randomization_scores,
)
from inception_lightning.explain.similarity import (
    SIMILARITIES,
    complexity,
    complexity_rise,
    map_ssim,
    rank_correlation,
)
from inception_lightning.explain.verdict import CheckResult, Verdict, bootstrap_verdict

__all__ = [
    "CHEAP_CHECKS",
    "CHECKS",
    "LAYER_METHODS",
    "METHODS",
    "ORDERS",
    "RANK_THRESHOLD",
    "SIMILARITIES",
    "Attribution",
    "Batch",
    "Bf16Forward",
    "CheckResult",
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
    "NoiseAveraged",
    "OcclusionMap",
    "Predictions",
    "Reliability",
    "ReportOptions",
    "RoadCurves",
    "SampleOptions",
    "SanityOptions",
    "ScoreOptions",
    "Verdict",
    "as_methods",
    "auc",
    "balanced_sample",
    "blur",
    "bootstrap_verdict",
    "boxes_to_masks",
    "build_report",
    "cascade_units",
    "complexity",
    "complexity_rise",
    "default_layer",
    "deletion_auc",
    "deletion_curve",
    "efficient_mprt",
    "empty_maps",
    "energy_pointing_game",
    "eval_mode",
    "explain_batch",
    "fp32",
    "fully_randomized",
    "fuse",
    "insertion_auc",
    "insertion_curve",
    "linear_imputation",
    "load_batch",
    "make_attribution",
    "map_ssim",
    "meaning",
    "model_randomization",
    "noisy_linear_imputation",
    "normalize_maps",
    "perturbation_curve",
    "pointing_game",
    "predict_dataset",
    "predict_probs",
    "random_logit",
    "randomization_scores",
    "randomized_models",
    "rank_correlation",
    "road_check",
    "road_curves",
    "run_checks",
    "run_methods",
    "safe_name",
    "scaled_tolerance",
    "smooth_mprt",
    "summarize_explanation",
    "write_report",
]
