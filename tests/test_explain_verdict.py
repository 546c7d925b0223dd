"""Bootstrap verdicts: decided only when the interval clears the threshold with enough images."""

from __future__ import annotations

import math

import pytest
import torch

from inception_lightning.explain import bootstrap_verdict


def test_a_constant_score_has_a_point_interval_and_decides_by_its_side() -> None:
    below = bootstrap_verdict(torch.full((12,), 0.2), 0.5, higher_passes=False)
    assert (below.mean, below.low, below.high) == pytest.approx((0.2, 0.2, 0.2))
    assert below.outcome == "pass" and below.images == 12
    assert bootstrap_verdict(torch.full((12,), 0.8), 0.5, higher_passes=False).outcome == "fail"
    assert bootstrap_verdict(torch.full((12,), 0.2), 0.05, higher_passes=True).outcome == "pass"
    assert bootstrap_verdict(torch.full((12,), 0.0), 0.05, higher_passes=True).outcome == "fail"


def test_an_interval_that_straddles_the_threshold_is_undecided() -> None:
    scores = torch.tensor([0.0, 1.0] * 10)  # mean 0.5, the threshold itself
    verdict = bootstrap_verdict(scores, 0.5, higher_passes=False)
    assert verdict.low < 0.5 < verdict.high and verdict.outcome == "undecided"
    assert verdict.describe().startswith("undecided: 0.50 [")


def test_too_few_images_or_only_empty_maps_leave_it_undecided() -> None:
    few = bootstrap_verdict(torch.full((9,), 0.1), 0.5, False, min_images=10)
    assert few.outcome == "undecided" and few.images == 9
    assert bootstrap_verdict(torch.full((10,), 0.1), 0.5, False, min_images=10).outcome == "pass"
    with_nan = torch.tensor([0.1] * 10 + [math.nan] * 5)  # empty maps: not scored
    assert bootstrap_verdict(with_nan, 0.5, False).images == 10
    none = bootstrap_verdict(torch.full((4,), math.nan), 0.5, False)
    assert none.outcome == "undecided" and none.images == 0 and math.isnan(none.mean)
    assert none.as_dict()["outcome"] == "undecided"


def test_the_interval_has_the_normal_theorys_width_and_is_seeded() -> None:
    """400 draws of N(0, 1): the 95% interval of the mean is about +-1.96 / sqrt(400)."""
    scores = torch.randn(400, generator=torch.Generator().manual_seed(0))
    verdict = bootstrap_verdict(scores, 0.5, False, resamples=4000, seed=1)
    half = (verdict.high - verdict.low) / 2
    assert half == pytest.approx(1.96 / 20 * float(scores.std()), rel=0.1)
    assert verdict.low < verdict.mean < verdict.high
    assert bootstrap_verdict(scores, 0.5, False, resamples=4000, seed=1) == verdict
    narrower = bootstrap_verdict(scores, 0.5, False, confidence=0.5, seed=1)
    assert narrower.high - narrower.low < verdict.high - verdict.low
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_verdict(scores, 0.5, False, confidence=1.5)
