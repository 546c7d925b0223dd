"""Several attribution methods on the same images: one run each, and the table comparing them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from inception_lightning.console import track
from inception_lightning.explain.checks import CHEAP_CHECKS
from inception_lightning.explain.explain_options import SanityOptions
from inception_lightning.explain.explainer import Explainer, Explanation, summarize_explanation
from inception_lightning.explain.road import road_check
from inception_lightning.explain.verdict import CheckResult

SCORES = (
    "pointing_game",
    "energy_pointing_game",
    "deletion_auc",
    "insertion_auc",
    "road_combined",
)


@dataclass(frozen=True)
class MethodRun:
    """One method's results on a sample of images.

    Args:
        method: the method's name (`methods.METHODS`).
        description: the method and its settings (layers, sign, ...).
        explanation: maps and scores of the sample.
        checks: the sanity checks' results (`checks.run_checks`, then ROAD's when the explainer
            ran it), empty when none ran.
    """

    method: str
    description: str
    explanation: Explanation
    checks: list[CheckResult] = field(default_factory=list)

    def check(self, name: str) -> CheckResult | None:
        """The result named `name` ("mprt/top_down", "emprt", ...), if it ran."""
        return next((c for c in self.checks if c.name == name), None)


def run_methods(
    explainers: Mapping[str, Explainer],
    indices: Sequence[int],
    sanity_indices: Sequence[int] = (),
    sanity: SanityOptions | None = None,
    checks: Sequence[str] = CHEAP_CHECKS,
) -> list[MethodRun]:
    """Explain `indices` with each method, and sanity-check it on `sanity_indices` (if any).

    The sanity checks run after every method has explained, under one progress bar over the
    methods, shown as the explainers' `progress` says (bars cannot nest). ROAD's verdict, when
    the explainers ran it, joins each method's checks.

    Args:
        explainers: one per method name, on the same dataset and model.
        indices: the images every method explains.
        sanity_indices: the images of the sanity checks; empty: none.
        sanity: the checks' settings (default `SanityOptions()`; its `samples` are the
            callers' to apply).
        checks: the checks to run (`checks.CHECKS`; "road" is the explainers' `road`).
    """
    sanity = sanity or SanityOptions()
    explained = {method: explainer.explain(indices) for method, explainer in explainers.items()}
    results: dict[str, list[CheckResult]] = {method: [] for method in explainers}
    if sanity_indices and explainers:
        progress = next(iter(explainers.values())).progress
        for method in track(list(explainers), "sanity checks", unit="methods", enabled=progress):
            signed = explained[method].signed_maps
            prefix = list(indices[: len(sanity_indices)]) == list(sanity_indices)
            trained = signed[: len(sanity_indices)] if signed is not None and prefix else None
            results[method] = explainers[method].sanity_check(
                sanity_indices, sanity, checks, trained
            )
    for method, explainer in explainers.items():
        road = explained[method].road
        if road is not None:
            results[method].append(road_check(road, sanity, explainer.seed))
    return [
        MethodRun(method, explainer.attribution.describe(), explained[method], results[method])
        for method, explainer in explainers.items()
    ]


def comparison_rows(
    runs: Sequence[MethodRun], classes: Sequence[str], subset: Tensor | None = None
) -> list[dict[str, Any]]:
    """One row per method: mean scores of the non-empty maps, empty maps, the cost in seconds
    per image, and each check's verdict (outcome, mean, interval, its own cost per image).

    Args:
        runs: from `run_methods`.
        classes: class names by index.
        subset: boolean `[N]` selecting the images to average (default: all).
    """
    rows = []
    for run in runs:
        overall = summarize_explanation(run.explanation, classes, subset)["overall"]
        row: dict[str, Any] = {"method": run.method, "description": run.description}
        row.update({k: overall[k] for k in ("count", "accuracy", "empty", *SCORES) if k in overall})
        row["seconds_per_image"] = run.explanation.seconds_per_image
        row["checks"] = {
            c.name: {
                "outcome": c.verdict.outcome,
                "mean": c.verdict.mean,
                "low": c.verdict.low,
                "high": c.verdict.high,
                "seconds_per_image": c.seconds_per_image,
            }
            for c in run.checks
        }
        rows.append(row)
    return rows
