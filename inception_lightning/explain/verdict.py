"""A check's verdict with its uncertainty: pass, fail, or undecided.

A check scores each image (a rank correlation, a rise in complexity, ...) and compares the mean
over images with a threshold. The mean of a few images moves with the sample: on the
quickstart checkpoint Grad-CAM's top-down correlation read -0.00 on one sample and 0.53 on
another, either side of 0.5. So the verdict carries a percentile-bootstrap confidence interval
of the mean (Efron & Tibshirani 1993, ch. 13: resample the images with replacement), and says
"undecided" when the interval contains the threshold or when fewer than `min_images` images
were scored (a bootstrap of a handful of values understates its spread).

`CheckResult` is what a check reports: its per-image scores, the verdict, a curve for the
plots and its cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

Outcome = Literal["pass", "fail", "undecided"]
CONFIDENCE = 0.95
RESAMPLES = 2000
MIN_IMAGES = 10


@dataclass(frozen=True)
class Verdict:
    """A mean over images, its confidence interval, and the outcome against a threshold.

    Args:
        mean: the mean over the scored images (NaN when none).
        low: the interval's lower end.
        high: the interval's upper end.
        threshold: the pass threshold on the mean.
        higher_passes: whether the mean must lie above (True) or below (False) the threshold.
        images: images scored (NaN scores left out).
        min_images: fewer than this many images leave the verdict undecided.
        confidence: the interval's coverage.
    """

    mean: float
    low: float
    high: float
    threshold: float
    higher_passes: bool
    images: int
    min_images: int
    confidence: float

    @property
    def outcome(self) -> Outcome:
        """ "pass" or "fail" when the whole interval lies on one side of the threshold (with
        enough images), else "undecided"."""
        if self.images < self.min_images or math.isnan(self.low):
            return "undecided"
        above, below = self.low > self.threshold, self.high < self.threshold
        if above or below:
            return "pass" if above == self.higher_passes else "fail"
        return "undecided"

    def describe(self) -> str:
        """E.g. `pass: 0.12 [0.05, 0.19] < 0.5, 16 images`."""
        side = ">" if self.higher_passes else "<"
        if math.isnan(self.mean):
            return f"{self.outcome}: no image scored"
        return (
            f"{self.outcome}: {self.mean:.2f} [{self.low:.2f}, {self.high:.2f}] {side} "
            f"{self.threshold:g}, {self.images} images"
        )

    def as_dict(self) -> dict:
        """Fields plus `outcome`, as plain Python values."""
        return {**asdict(self), "outcome": self.outcome}


def bootstrap_verdict(
    scores: Tensor,
    threshold: float,
    higher_passes: bool,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    min_images: int = MIN_IMAGES,
    seed: int = 0,
) -> Verdict:
    """The verdict on per-image `scores` `[N]` (NaN: not scored, left out).

    Args:
        scores: one value per image.
        threshold: the pass threshold on the mean.
        higher_passes: a mean above the threshold passes (else below).
        confidence: the interval's coverage, in (0, 1).
        resamples: bootstrap resamples of the images.
        min_images: the fewest scored images that can decide.
        seed: seeds the resampling, so a verdict is reproducible.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    values = scores.detach().double().cpu().flatten()
    values = values[~values.isnan()]
    n = len(values)
    if n == 0:
        nan = float("nan")
        return Verdict(nan, nan, nan, threshold, higher_passes, 0, min_images, confidence)
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, n, (resamples, n), generator=generator)
    means = values[draws].mean(dim=1)
    tail = (1 - confidence) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return Verdict(
        float(values.mean()),
        float(low),
        float(high),
        threshold,
        higher_passes,
        n,
        min_images,
        confidence,
    )


@dataclass(frozen=True)
class Curve:
    """A check's mean curve over images, for plots: `y[i]` at `x[i]`."""

    x: list[Any]
    y: list[float]
    xlabel: str
    ylabel: str


@dataclass(frozen=True)
class CheckResult:
    """One check of one method.

    Args:
        name: the check, e.g. "mprt/top_down", "smprt/bottom_up", "emprt", "random_logit",
            "road".
        statistic: what each image's score is.
        scores: the score per image (NaN: not scored, e.g. an empty map).
        verdict: pass, fail or undecided, with the interval.
        seconds_per_image: the check's own cost (maps and forwards it added), per image.
        curve: the mean curve for the plots, if the check has one.
        details: settings worth showing (order, similarity, noise samples, ...).
    """

    name: str
    statistic: str
    scores: list[float]
    verdict: Verdict
    seconds_per_image: float
    curve: Curve | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The check without its order: "mprt", "smprt", "emprt", "random_logit", "road"."""
        return self.name.split("/")[0]

    def as_dict(self) -> dict:
        """Plain Python values, the verdict's outcome included."""
        record = asdict(self)
        record["verdict"] = self.verdict.as_dict()
        return record
