"""Several attribution methods on the same images: one run each, and the table comparing them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from inception_lightning.console import track
from inception_lightning.explain.explain_options import SanityOptions
from inception_lightning.explain.explainer import Explainer, Explanation, summarize_explanation
from inception_lightning.explain.sanity import RandomizationCurve

SCORES = ("pointing_game", "energy_pointing_game", "deletion_auc", "insertion_auc")


@dataclass(frozen=True)
class MethodRun:
    """One method's results on a sample of images.

    Args:
        method: the method's name (`methods.METHODS`).
        description: the method and its settings (layers, sign, ...).
        explanation: maps and scores of the sample.
        sanity: the cascading randomisation check, or None when it was not run.
    """

    method: str
    description: str
    explanation: Explanation
    sanity: RandomizationCurve | None


def run_methods(
    explainers: Mapping[str, Explainer],
    indices: Sequence[int],
    sanity_indices: Sequence[int] = (),
    sanity: SanityOptions = SanityOptions(),  # noqa: B008 (frozen, so never shared state)
) -> list[MethodRun]:
    """Explain `indices` with each method, and sanity-check it on `sanity_indices` (if any).

    The sanity checks run after every method has explained, under one progress bar over the
    methods, shown as the explainers' `progress` says (bars cannot nest).

    Args:
        explainers: one per method name, on the same dataset and model.
        indices: the images every method explains.
        sanity_indices: the images of the sanity check; empty: no check.
        sanity: the check's options (its `samples` are the callers' to apply).
    """
    explained = {method: explainer.explain(indices) for method, explainer in explainers.items()}
    checks: dict[str, RandomizationCurve] = {}
    if sanity_indices and explainers:
        progress = next(iter(explainers.values())).progress
        for method in track(list(explainers), "sanity check", unit="methods", enabled=progress):
            checks[method] = explainers[method].sanity_check(sanity_indices, sanity)
    return [
        MethodRun(method, explainer.attribution.describe(), explained[method], checks.get(method))
        for method, explainer in explainers.items()
    ]


def comparison_rows(
    runs: Sequence[MethodRun], classes: Sequence[str], subset: Tensor | None = None
) -> list[dict[str, Any]]:
    """One row per method: mean scores of the non-empty maps, empty maps, the sanity verdict,
    and the cost in seconds per image.

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
        if run.sanity is not None:
            row["sanity_passed"] = run.sanity.passed
            row["sanity_rank_correlation"] = run.sanity.verdict_correlation
        rows.append(row)
    return rows
