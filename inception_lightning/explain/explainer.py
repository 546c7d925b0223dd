"""Explaining dataset images: sample them, attribute the model's decision, score the maps.

`Explainer` is the one pipeline behind the GradCam callback and the report command: a seeded,
class-balanced sample of a `data.protocol.LabelledImages` dataset (plus images the model gets
wrong), their predictions and maps by one attribution method, a score per image and metric
(ROAD among them when asked), the method's cost, and its sanity checks (`checks.run_checks`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from inception_lightning.console import track
from inception_lightning.data.protocol import LabelledImages
from inception_lightning.explain.attribution import (
    Attribution,
    empty_maps,
    eval_mode,
    model_device,
    normalize_maps,
    with_sign,
)
from inception_lightning.explain.checks import CHEAP_CHECKS, run_checks
from inception_lightning.explain.explain_options import SanityOptions
from inception_lightning.explain.metrics import (
    auc,
    deletion_curve,
    energy_pointing_game,
    insertion_curve,
    pointing_game,
)
from inception_lightning.explain.road import RoadCurves, road_curves
from inception_lightning.explain.verdict import CheckResult


@dataclass
class Explanation:
    """Results for `N` images, all on the CPU.

    Args:
        indices: dataset indices `[N]`.
        pixels: the images as stored, uint8 `[N, 3, H, W]` (what the pictures show).
        images: `[N, 3, H, W]` model inputs (the pixels normalised).
        labels: true classes `[N]`.
        probs: softmax probabilities `[N, C]`.
        maps: maps of the true class `[N, H, W]`, normalised (`Attribution.attribute`).
        pred_maps: maps of the predicted class `[N, H, W]` (the same as `maps` where right).
        masks: object masks `[N, H, W]`, or None when the dataset has none.
        scores: per-image metric values `[N]` by metric name; NaN where the map is empty.
        curves: per-image deletion and insertion curves `[N, steps + 1]` (the target's
            probability as pixels move, most salient first), by "deletion" / "insertion";
            NaN rows where the predicted class's map is empty.
        seconds_per_image: the attribution's cost, the true-class maps' time per image.
        road: ROAD's MoRF and LeRF curves of the predicted class's maps, when asked
            (`explain_batch(road=True)`); `scores["road_combined"]` holds its score.
        signed_maps: the true-class maps signed and not normalised, where `maps` derive from
            them (methods of the input's pixels, whose maps need no upsampling): the sanity
            checks' trained maps; else None.
    """

    indices: Tensor
    pixels: Tensor
    images: Tensor
    labels: Tensor
    probs: Tensor
    maps: Tensor
    pred_maps: Tensor
    masks: Tensor | None
    scores: dict[str, Tensor]
    curves: dict[str, Tensor] = field(default_factory=dict)
    seconds_per_image: float = float("nan")
    road: RoadCurves | None = None
    signed_maps: Tensor | None = None

    @property
    def preds(self) -> Tensor:
        """Predicted classes `[N]`."""
        return self.probs.argmax(dim=1)

    @property
    def wrong(self) -> Tensor:
        """Boolean `[N]`: misclassified images."""
        return self.preds != self.labels

    @property
    def empty(self) -> Tensor:
        """Boolean `[N]`: true-class maps that are zero everywhere (no evidence for it)."""
        return empty_maps(self.maps)


@dataclass(frozen=True)
class Batch:
    """Dataset items ready to explain: pixels, model inputs, labels and masks (None if unknown)."""

    indices: list[int]
    pixels: Tensor
    images: Tensor
    labels: Tensor
    masks: Tensor | None


def balanced_sample(
    labels: Sequence[int], per_class: int, seed: int = 0, limit: int | None = None
) -> list[int]:
    """Up to `per_class` indices of each class, drawn in a seeded random order, sorted.

    Args:
        labels: every item's class.
        per_class: the most images of one class.
        seed: seeds the order, so the same labels always give the same sample.
        limit: the most images in all (the classes seen first in the order fill it).
    """
    counts: dict[int, int] = {}
    chosen: list[int] = []
    for i in seeded_order(len(labels), seed):
        if limit is not None and len(chosen) >= limit:
            break
        label = int(labels[i])
        if counts.get(label, 0) < per_class:
            counts[label] = counts.get(label, 0) + 1
            chosen.append(i)
    return sorted(chosen)


def seeded_order(count: int, seed: int) -> list[int]:
    """`range(count)` in a random order that depends on `seed` only."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()


def load_batch(dataset: LabelledImages, indices: Sequence[int]) -> Batch:
    """The dataset's items at `indices`, with model inputs made by its `normalize`."""
    items = [dataset[i] for i in indices]
    pixels = torch.stack([image for image, _ in items])
    masks = None
    if dataset.has_masks:
        masks = torch.stack([torch.as_tensor(dataset.mask(i)) for i in indices])
    labels = torch.tensor([int(label) for _, label in items])
    return Batch(list(indices), pixels, dataset.normalize(pixels), labels, masks)


def predict_probs(
    attribution: Attribution, images: Tensor, forward: nn.Module | None = None
) -> Tensor:
    """Softmax probabilities `[N, C]` on the CPU, batched on the model's device.

    Args:
        attribution: the method whose model and batch size are used.
        images: the model inputs.
        forward: runs the forward passes instead of `attribution.model` (e.g. `Bf16Forward`).
    """
    model = attribution.model if forward is None else forward
    size = attribution.batch_size
    device = model_device(model)
    out = []
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(images), size):
            logits = model(images[start : start + size].to(device))
            out.append(logits.float().softmax(dim=1).cpu())
    return torch.cat(out)


def timed_attribute(
    attribution: Attribution, images: Tensor, targets: Tensor
) -> tuple[Tensor, Tensor | None, float]:
    """`(maps, signed maps or None, seconds)` on the CPU (see `Explanation.signed_maps`); the
    clock stops once the device has finished."""
    device = model_device(attribution.model)
    start = time.perf_counter()
    signed = None
    if attribution.explained_layers:
        maps = attribution.attribute(images, targets)
    else:  # the sign commutes with the (absent) upsampling: one pass gives both
        signed = attribution.with_sign("signed").attribute(images, targets, normalize=False)
        maps = normalize_maps(with_sign(signed, attribution.sign))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return maps.cpu(), None if signed is None else signed.cpu(), time.perf_counter() - start


def explain_batch(
    attribution: Attribution,
    batch: Batch,
    steps: int = 16,
    tolerance: int | None = None,
    progress: bool | None = False,
    forward: nn.Module | None = None,
    road: bool = False,
    seed: int = 0,
) -> Explanation:
    """Predict, map and score a batch.

    The pointing games score the true class's map (does the model look at the object?, as
    Zhang et al. 2016 do); deletion and insertion score the predicted class's map (is the map
    faithful to the model's decision?, as Petsiuk et al. 2018 do).

    Args:
        attribution: the method, bound to the model.
        batch: the images, from `load`.
        steps: deletion/insertion steps.
        tolerance: pointing-game tolerance in pixels (None: 15 px at 224 px, scaled).
        progress: show a bar over the deletion/insertion batches, most of the time taken
            (None: on a terminal; see `console.track`).
        forward: runs the forward-only work (predictions, deletion and insertion) instead of
            the method's model, e.g. `Bf16Forward`; the maps always come from the method.
        road: also run ROAD (`road.road_curves`) on the predicted class's maps: its curves
            and `scores["road_combined"]` (higher is better).
        seed: seeds ROAD's imputation noise.
    """
    images, labels, masks = batch.images, batch.labels, batch.masks
    probs = predict_probs(attribution, images, forward)
    preds = probs.argmax(dim=1)
    maps, signed_maps, seconds = timed_attribute(attribution, images, labels)
    pred_maps = maps.clone()
    wrong = preds != labels
    if wrong.any():
        pred_maps[wrong] = attribution.attribute(images[wrong], preds[wrong]).cpu()
    curves: dict[str, list[Tensor]] = {"deletion": [], "insertion": []}
    road_parts: list[RoadCurves] = []
    model = attribution.model if forward is None else forward
    n, step = len(images), attribution.batch_size
    # the intact image's probability ends every curve: the predictions' forward gave it
    intact = probs.gather(1, preds[:, None])[:, 0]
    title = "deletion/insertion" + ("/ROAD" if road else "")
    starts = track(range(0, n, step), title, n, "images", progress, lambda i: min(step, n - i))
    for start in starts:
        part = slice(start, start + step)
        args = (model, images[part], pred_maps[part], preds[part], steps)
        curves["deletion"].append(deletion_curve(*args, intact=intact[part]).cpu())
        curves["insertion"].append(insertion_curve(*args, intact=intact[part]).cpu())
        if road:
            road_parts.append(
                road_curves(
                    model,
                    images[part],
                    pred_maps[part],
                    preds[part],
                    seed=seed + start,
                    batch_size=step,
                    intact=probs[part],
                )
            )
    empty = empty_maps(pred_maps)  # points nowhere: no curve, no score (NaN)
    curve = {k: torch.cat(v).masked_fill(empty[:, None], float("nan")) for k, v in curves.items()}
    result = {f"{name}_auc": auc(values) for name, values in curve.items()}
    road_result = _joined(road_parts) if road else None
    if road_result is not None:
        result["road_combined"] = road_result.combined
    if masks is not None:
        result["pointing_game"] = pointing_game(maps, masks, tolerance)
        result["energy_pointing_game"] = energy_pointing_game(maps, masks)
    indices = torch.as_tensor(batch.indices)
    return Explanation(
        indices,
        batch.pixels,
        images.cpu(),
        labels,
        probs,
        maps,
        pred_maps,
        masks,
        result,
        curve,
        seconds / max(1, len(images)),
        road_result,
        signed_maps,
    )


def _joined(parts: Sequence[RoadCurves]) -> RoadCurves:
    """One `RoadCurves` of consecutive batches'."""
    return RoadCurves(
        parts[0].fractions,
        *(
            torch.cat([getattr(p, k) for p in parts])
            for k in ("morf", "lerf", "morf_hits", "lerf_hits")
        ),
        sum(p.seconds for p in parts),
    )


class Explainer:
    """One attribution method on one dataset: sample, find mistakes, explain, sanity-check.

    Args:
        attribution: the method, bound to the model.
        dataset: the images, labels and (optionally) object masks.
        steps: deletion/insertion steps.
        tolerance: pointing-game tolerance in pixels (None: Zhang et al.'s, scaled).
        seed: seeds the sample, the search for mistakes and the sanity check.
        progress: show progress while explaining (None: on a terminal; see `console.track`).
        forward: runs the forward-only work instead of the method's model (see `explain`).
        road: run ROAD beside deletion and insertion (`explain_batch`).
    """

    def __init__(
        self,
        attribution: Attribution,
        dataset: LabelledImages,
        steps: int = 16,
        tolerance: int | None = None,
        seed: int = 0,
        progress: bool | None = False,
        forward: nn.Module | None = None,
        road: bool = False,
    ) -> None:
        if not isinstance(dataset, LabelledImages):
            raise TypeError(
                f"{type(dataset).__name__} is not a LabelledImages dataset (classes, labels, "
                "normalize, has_masks, mask); use the package's datamodules or datasets"
            )
        self.attribution = attribution
        self.dataset = dataset
        self.steps = steps
        self.tolerance = tolerance
        self.seed = seed
        self.progress = progress
        self.forward = forward
        self.road = road

    def sample(self, per_class: int, limit: int | None = None) -> list[int]:
        """A seeded, class-balanced sample of the dataset's indices."""
        return balanced_sample(self.dataset.labels, per_class, self.seed, limit)

    def misclassified(self, exclude: Sequence[int], limit: int, search: int) -> list[int]:
        """Up to `limit` images the model gets wrong, among the first `search` of the seeded
        order that are not in `exclude`."""
        if limit == 0:
            return []
        taken = set(exclude)
        pool = [i for i in seeded_order(len(self.dataset), self.seed) if i not in taken]
        pool = pool[:search]
        found: list[int] = []
        size = self.attribution.batch_size
        for start in range(0, len(pool), size):
            batch = load_batch(self.dataset, pool[start : start + size])
            probs = predict_probs(self.attribution, batch.images, self.forward)
            wrong = (probs.argmax(dim=1) != batch.labels).tolist()
            found += [i for i, w in zip(batch.indices, wrong, strict=True) if w]
            if len(found) >= limit:
                break
        return found[:limit]

    def explain(self, indices: Sequence[int]) -> Explanation:
        """Predictions, maps and scores of the images at `indices`."""
        batch = load_batch(self.dataset, indices)
        return explain_batch(
            self.attribution,
            batch,
            self.steps,
            self.tolerance,
            self.progress,
            self.forward,
            self.road,
            self.seed,
        )

    def sanity_check(
        self,
        indices: Sequence[int],
        options: SanityOptions | None = None,
        checks: Sequence[str] = CHEAP_CHECKS,
        trained: Tensor | None = None,
    ) -> list[CheckResult]:
        """`checks.run_checks` on the true-class maps of the images at `indices`; `trained`:
        their signed, un-normalised maps, if known (`Explanation.signed_maps`)."""
        batch = load_batch(self.dataset, indices)
        return run_checks(
            self.attribution,
            batch.images,
            batch.labels,
            len(self.dataset.classes),
            options or SanityOptions(),
            checks,
            self.seed,
            trained,
        )


def summarize_explanation(
    expl: Explanation, classes: Sequence[str], subset: Tensor | None = None
) -> dict:
    """Counts, accuracy, empty maps and mean scores (of the non-empty maps), overall and per
    class (classes with no image are left out).

    Args:
        expl: the explained images.
        classes: class names by index.
        subset: boolean `[N]` selecting the images to count (default: all).
    """
    keep = torch.ones(len(expl.labels), dtype=torch.bool) if subset is None else subset
    per_class = {}
    for c, name in enumerate(classes):
        selected = keep & (expl.labels == c)
        if selected.any():
            per_class[name] = _means(expl, selected)
    return {"overall": _means(expl, keep), "per_class": per_class}


def _means(expl: Explanation, selected: Tensor) -> dict[str, float]:
    values = {
        "count": selected.sum(),
        "accuracy": (~expl.wrong[selected]).float().mean(),
        "empty": expl.empty[selected].sum(),
    }
    values.update({name: score[selected].nanmean() for name, score in expl.scores.items()})
    return {name: float(value) for name, value in values.items()}
