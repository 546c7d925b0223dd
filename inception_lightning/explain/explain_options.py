"""The option groups of explaining: the sample, the maps, their scores, the sanity check and the
report. The `GradCam` callback takes them all; the `report` command the ones it shares.

New options join a group (or a new one), so that the callback's constructor stays narrow; see
`models.options.OptionGroup` for how the groups parse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from inception_lightning.explain.attribution import (
    INTERPOLATIONS,
    SIGN_MODES,
    Attribution,
    Interpolation,
    SignMode,
)
from inception_lightning.explain.randomization import ORDERS, Order
from inception_lightning.explain.similarity import (
    SIMILARITIES,
    Similarity,
    SimilarityName,
    similarity,
)
from inception_lightning.explain.verdict import CONFIDENCE, MIN_IMAGES
from inception_lightning.models.options import (
    OptionGroup,
    in_range,
    non_negative_int,
    one_of,
    positive_int,
)

CheckName = Literal["mprt", "smprt", "emprt", "random_logit", "road"]
VERDICT_DEPTH = 3


@dataclass(frozen=True)
class SampleOptions(OptionGroup):
    """The images explained at each run: a seeded, class-balanced sample drawn once, plus
    images the model currently gets wrong.

    Args:
        per_class: sample images per class.
        max_samples: the most sample images in all.
        max_misclassified: extra misclassified images per run.
        misclassified_search: images scanned for them per run.
    """

    prefix: ClassVar[str] = "sample"

    per_class: int = 2
    max_samples: int = 32
    max_misclassified: int = 8
    misclassified_search: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.key("per_class"), self.per_class)
        positive_int(self.key("max_samples"), self.max_samples)
        non_negative_int(self.key("max_misclassified"), self.max_misclassified)
        non_negative_int(self.key("misclassified_search"), self.misclassified_search)


@dataclass(frozen=True)
class MapOptions(OptionGroup):
    """How the methods compute their maps (see `explain.methods.make_attribution`).

    Args:
        sign: "relu", "abs" or "signed"; None: each method's default.
        interpolation: how layer maps are upsampled to the input size.
        method_options: per method, its own settings, e.g.
            `{"integrated_gradients": {"steps": 64, "noise_samples": 8}}`.
        batch_size: images per forward/backward pass.
    """

    prefix: ClassVar[str] = "maps"

    sign: SignMode | None = None
    interpolation: Interpolation = "bilinear"
    method_options: dict[str, dict[str, Any]] | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.key("sign"), self.sign, (None, *SIGN_MODES))
        one_of(self.key("interpolation"), self.interpolation, INTERPOLATIONS)
        positive_int(self.key("batch_size"), self.batch_size)

    def options_of(self, method: str) -> dict[str, Any] | None:
        """The settings given for `method`, or None."""
        return (self.method_options or {}).get(method)


@dataclass(frozen=True)
class ScoreOptions(OptionGroup):
    """How the maps are scored (see `explain.metrics`).

    Args:
        steps: deletion/insertion steps.
        tolerance: pointing-game tolerance in pixels; None scales Zhang et al.'s 15 px at
            224 px to the input size.
    """

    prefix: ClassVar[str] = "scores"

    steps: int = 16
    tolerance: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.key("steps"), self.steps)
        non_negative_int(self.key("tolerance"), self.tolerance, allow_none=True)


@dataclass(frozen=True)
class SanityOptions(OptionGroup):
    """What the sanity checks (`explain.checks`) run and how they decide; the callback's and
    `report`'s.

    Args:
        samples: images of the checks (the sample's first ones); 0 turns them off.
        pixel_samples: the most of them for integrated gradients and occlusion (`costly`
            methods: each map costs them tens to hundreds of passes).
        threshold: the pass threshold of the randomisation checks; None: the similarity's
            own (rank correlation 0.5, SSIM 0.5, complexity rise 0.05).
        max_depth: the curves' steps per order (None: the whole network); a cascade also
            maps the verdict's step, wherever it lies, and nothing between.
        pixel_max_depth: the same for integrated gradients and occlusion (`costly` methods);
            0: a cascade maps its verdict's step alone, the independent order its first unit.
        orders: the MPRT orders to run, each with its verdict.
        similarity: "spearman", "ssim" or "complexity" (the rise in complexity).
        checks: the checks to run (`checks.CHECKS`): "mprt", "smprt", "emprt",
            "random_logit", "road"; None: the callback's cheap ones ("mprt", "emprt",
            "random_logit") in the callback, all of them in `report`.
        noise_samples: sMPRT's noisy copies per image (Hedström et al. use 50); integrated
            gradients and occlusion take `pixel_noise_samples`.
        pixel_noise_samples: sMPRT's noisy copies per image for the `costly` methods.
        noise_magnitude: sMPRT's noise, as a share of each image's value range.
        verdict_depth: the cascade step the verdict reads (units random).
        min_samples: fewer scored images leave a verdict undecided.
        model_seed: seeds the randomised models' weights, whatever the sample's seed (as
            Quantus's fixed `seed`): a verdict's interval covers the images, not one draw of
            weights, so a draw must not change with the images.
        confidence: the coverage of the verdict's bootstrap interval.
    """

    prefix: ClassVar[str] = "sanity"

    samples: int = 16
    pixel_samples: int = 12
    threshold: float | None = None
    max_depth: int | None = VERDICT_DEPTH
    pixel_max_depth: int | None = 0
    orders: tuple[Order, ...] = ORDERS
    similarity: SimilarityName = "spearman"
    checks: tuple[CheckName, ...] | None = None
    noise_samples: int = 8
    pixel_noise_samples: int = 2
    noise_magnitude: float = 0.1
    verdict_depth: int = VERDICT_DEPTH
    min_samples: int = MIN_IMAGES
    model_seed: int = 0
    confidence: float = CONFIDENCE

    def __post_init__(self) -> None:
        super().__post_init__()
        non_negative_int(self.key("samples"), self.samples)
        positive_int(self.key("pixel_samples"), self.pixel_samples)
        if self.threshold is not None:
            in_range(self.key("threshold"), self.threshold, -1.0, 1.0)
        positive_int(self.key("max_depth"), self.max_depth, allow_none=True)
        non_negative_int(self.key("pixel_max_depth"), self.pixel_max_depth, allow_none=True)
        if not self.orders:
            raise ValueError(f"{self.key('orders')} must name some of {ORDERS}, got []")
        for order in self.orders:
            one_of(self.key("orders"), order, ORDERS)
        one_of(self.key("similarity"), self.similarity, SIMILARITIES)
        for check in self.checks or ():
            one_of(self.key("checks"), check, get_args(CheckName))
        positive_int(self.key("noise_samples"), self.noise_samples)
        positive_int(self.key("pixel_noise_samples"), self.pixel_noise_samples)
        in_range(self.key("noise_magnitude"), self.noise_magnitude, 0.0, math.inf)
        positive_int(self.key("verdict_depth"), self.verdict_depth)
        non_negative_int(self.key("min_samples"), self.min_samples)
        non_negative_int(self.key("model_seed"), self.model_seed)
        in_range(self.key("confidence"), self.confidence, 0.0, 1.0, high_open=True)
        if self.confidence == 0:
            raise ValueError(f"{self.key('confidence')} must lie in (0, 1), got 0")

    def depth(self, attribution: Attribution) -> int | None:
        """The curves' depth for this method."""
        return self.pixel_max_depth if attribution.costly else self.max_depth

    def noise(self, attribution: Attribution) -> int:
        """sMPRT's noisy copies for this method."""
        return self.pixel_noise_samples if attribution.costly else self.noise_samples

    @property
    def measure(self) -> Similarity:
        """The chosen similarity."""
        return similarity(self.similarity)

    @property
    def pass_threshold(self) -> float:
        """`threshold`, or the similarity's own."""
        return self.measure.threshold if self.threshold is None else self.threshold


@dataclass(frozen=True)
class ReportOptions(OptionGroup):
    """The attribution report written at the end of `fit` (`explain.report_builder`).

    Args:
        enabled: write it.
        dir: its folder; None: `report/` in the run's log directory (beside its TensorBoard
            files), so two runs never share one.
        per_class: report images per class.
    """

    prefix: ClassVar[str] = "report"

    enabled: bool = True
    dir: str | Path | None = None
    per_class: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.key("per_class"), self.per_class)
