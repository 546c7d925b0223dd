"""The option groups of explaining: the sample, the maps, their scores, the sanity check and the
report. The `GradCam` callback takes them all; the `report` command the ones it shares.

New options join a group (or a new one), so that the callback's constructor stays narrow; see
`models.options.OptionGroup` for how the groups parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from inception_lightning.explain.attribution import (
    INTERPOLATIONS,
    SIGN_MODES,
    Interpolation,
    SignMode,
)
from inception_lightning.explain.sanity import RANK_THRESHOLD
from inception_lightning.models.options import (
    OptionGroup,
    in_range,
    non_negative_int,
    one_of,
    positive_int,
)


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
    """The sanity check of the maps (`explain.sanity`, Adebayo et al. 2018).

    Args:
        samples: images of the check (the sample's first ones); 0 turns it off.
        threshold: a method passes when its mean rank correlation falls below this.
        max_depth: randomise at most this many units (None: the whole network).
    """

    prefix: ClassVar[str] = "sanity"

    samples: int = 8
    threshold: float = RANK_THRESHOLD
    max_depth: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        non_negative_int(self.key("samples"), self.samples)
        in_range(self.key("threshold"), self.threshold, -1.0, 1.0)
        positive_int(self.key("max_depth"), self.max_depth, allow_none=True)


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
