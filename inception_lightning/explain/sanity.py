"""Does a map depend on the model? The model-parameter randomisation test (MPRT).

Adebayo et al. 2018, "Sanity Checks for Saliency Maps", sect. 3.1: re-initialise the network's
parameters unit by unit, on a copy, and compare each step's maps with the trained network's.
A method whose maps survive the randomisation of the layers that make the decision explains
the input, not the model.

The 2018 form (top-down, Spearman and SSIM of absolute, normalised maps) has known confounds
(Binder et al. 2022; Hedström et al. 2023, "Sanity Checks Revisited"): top-down order keeps the
lower layers trained; absolute values and normalisation hide differences; a noisy similarity
blurs the result. Here:

- the order is a choice: "top_down", "bottom_up" or "independent" (`randomization`), each with
  its own verdict;
- the maps are compared as the method gives them, neither absolute nor normalised, by a
  similarity the user chooses (`similarity`: Spearman, SSIM or the rise in complexity);
- the verdict is a bootstrap interval over images (`verdict`), "undecided" when it straddles
  the threshold.

The verdict of a cascade reads the step at which `verdict_depth` units are random (by default
3: the stem's first three layers bottom-up, the head and the top two stages top-down). A layer
method's top-down verdict waits until the stage of its layer is random too: above it, only the
weights of its channels change, while the trained activations keep drawing the objects (Grad-CAM
on the tiny test network's 20x20 `mixed_5d` keeps a rank correlation of 0.4 with the top three
units random, and -0.02 once `mixed_5d` is). The verdict of the independent order reads each
image's mean over the units randomised. An edge detector scores 1.0 at every step; a map of
fresh noise scores about 0 and wrongly passes (`mprt.efficient_mprt` catches it).
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from inception_lightning.explain.attribution import Attribution, model_device
from inception_lightning.explain.explain_options import VERDICT_DEPTH, SanityOptions
from inception_lightning.explain.randomization import (
    Order,
    cascade_units,
    randomized_models,
)
from inception_lightning.explain.similarity import (
    SIMILARITIES,
    Similarity,
)
from inception_lightning.explain.verdict import CheckResult, Curve, bootstrap_verdict

RANK_THRESHOLD = SIMILARITIES["spearman"].threshold


@dataclass(frozen=True)
class RandomizationScores:
    """Per-step, per-image comparisons of randomised maps with the trained ones.

    Args:
        steps: the unit randomised at each step.
        scores: `[steps, N]` similarity (or complexity rise) per step and image; NaN for
            images whose trained map is empty.
        seconds: the time the randomised maps took.
    """

    steps: list[str]
    scores: Tensor
    seconds: float = 0.0


def randomization_scores(
    attribution: Attribution,
    inputs: Tensor,
    targets: Tensor | Sequence[int],
    models: Iterable[tuple[str, nn.Module]],
    measure: Similarity,
    trained: Tensor | None = None,
    keep: Container[int] | None = None,
) -> RandomizationScores:
    """Compare the maps of each `(name, model)` of `models` with the trained model's maps.

    Maps are taken as the method gives them (`normalize=False`).

    Args:
        attribution: the method on the trained model.
        inputs: images `[N, 3, H, W]`.
        targets: the class explained per image.
        models: randomised copies in order, e.g. `randomization.randomized_models`.
        measure: how a pair of maps is compared.
        trained: the trained model's maps of `inputs`, if already computed.
        keep: the steps (0-based) to map and compare; None: every one.
    """
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if trained is None:
        trained = attribution.attribute(inputs, targets, normalize=False).cpu()
    empty = (trained == 0).flatten(1).all(dim=1)
    steps, rows = [], []
    start = time.perf_counter()
    for step, (name, model) in enumerate(models):
        if keep is not None and step not in keep:
            continue
        maps = attribution.with_model(model).attribute(inputs, targets, normalize=False).cpu()
        steps.append(name)
        rows.append(measure.measure(trained, maps).masked_fill(empty, float("nan")))
    synchronize(attribution.model)
    seconds = time.perf_counter() - start
    scores = torch.stack(rows) if rows else torch.empty(0, len(targets))
    return RandomizationScores(steps, scores, seconds)


def model_randomization(
    attribution: Attribution,
    inputs: Tensor,
    targets: Tensor | Sequence[int],
    order: Order = "bottom_up",
    options: SanityOptions | None = None,
    seed: int = 0,
    trained: Tensor | None = None,
    name: str | None = None,
    curve: bool = True,
) -> CheckResult:
    """MPRT in one order: randomise a copy of `attribution.model` unit by unit and decide.

    The model itself is not changed; the global random state is restored afterwards.

    Args:
        attribution: the method on the trained model.
        inputs: images `[N, 3, H, W]`.
        targets: the class to explain for each image (the same at every step).
        order: "top_down", "bottom_up" or "independent".
        options: similarity, threshold, depths and verdict settings (default `SanityOptions()`).
        seed: seeds the bootstrap (the weights drawn: `options.model_seed`).
        trained: the trained model's un-normalised maps of `inputs`, if already computed.
        name: the check's name (default `mprt/<order>`).
        curve: map the curve's steps (`options.depth`); False: a cascade maps its verdict's
            step alone (the independent order always maps each of its units).
    """
    options = options or SanityOptions()
    verdict = verdict_depth(attribution, order, options.verdict_depth)
    depth = options.depth(attribution)
    if order == "independent":
        keep, depth = None, None if depth is None else max(depth, 1)
    elif curve:
        keep = None if depth is None else {*range(depth), verdict - 1}
        depth = None if depth is None else max(depth, verdict)
    else:
        keep, depth = {verdict - 1}, verdict
    models = randomized_models(attribution.model, order, seed=options.model_seed, max_depth=depth)
    result = randomization_scores(
        attribution, inputs, targets, models, options.measure, trained, keep
    )
    if order == "independent":
        per_image = result.scores.nanmean(dim=0)
        read = f"mean over the {len(result.steps)} units, each randomised alone"
    else:
        units = [unit for unit, _ in cascade_units(attribution.model)]
        units = units[::-1] if order == "bottom_up" else units
        last = units[min(verdict, len(units)) - 1]
        per_image = result.scores[result.steps.index(last)]
        read = f"{units.index(last) + 1} units random ({_short(last)} last)"
    return _randomization_result(
        name or f"mprt/{order}", order, attribution, result, per_image, read, options, seed
    )


def verdict_depth(attribution: Attribution, order: Order, depth: int = VERDICT_DEPTH) -> int:
    """The cascade step (units random) a verdict reads: `depth`, or for a layer method's
    top-down cascade at least the step that randomises the stage of each explained layer."""
    if order != "top_down" or not attribution.explained_layers:
        return depth
    units = [name for name, _ in cascade_units(attribution.model)]
    steps = [
        i + 1
        for layer in attribution.explained_layers
        for i, unit in enumerate(units)
        if layer == unit or layer.startswith(unit + ".")
    ]
    return max([depth, *steps])


def _randomization_result(
    name: str,
    order: Order,
    attribution: Attribution,
    result: RandomizationScores,
    per_image: Tensor,
    read: str,
    options: SanityOptions,
    seed: int,
) -> CheckResult:
    measure = options.measure
    verdict = bootstrap_verdict(
        per_image,
        options.pass_threshold,
        measure.higher_passes,
        options.confidence,
        min_images=options.min_samples,
        seed=seed,
    )
    order_text = order.replace("_", "-")
    curve = Curve(
        x=[_short(s) for s in result.steps],
        y=[float(v) for v in result.scores.nanmean(dim=1)],
        xlabel=f"unit randomised ({order_text}{', cumulative' if order != 'independent' else ''})",
        ylabel=measure.label,
    )
    n = max(1, per_image.numel())
    return CheckResult(
        name=name,
        statistic=f"{measure.label}, {read}",
        scores=[float(v) for v in per_image],
        verdict=verdict,
        seconds_per_image=result.seconds / n,
        curve=curve,
        details={"order": order, "similarity": measure.name, "method": attribution.describe()},
    )


def _short(unit: str) -> str:
    return unit.removeprefix("features.")


def synchronize(model: nn.Module) -> None:
    """Wait for the model's device, so that a clock read after it counts its work."""
    device = model_device(model)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
