"""Explain a set of dataset images: predictions, Grad-CAM maps and per-image metric scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from inception_lightning.explain.gradcam import GradCAM, eval_mode
from inception_lightning.explain.metrics import (
    deletion_auc,
    energy_pointing_game,
    insertion_auc,
    pointing_game,
)


@dataclass
class Explanation:
    """Results for `N` images, all on the CPU.

    Args:
        indices: dataset indices `[N]`.
        images: `[N, 3, H, W]` model inputs.
        labels: true classes `[N]`.
        probs: softmax probabilities `[N, C]`.
        maps: Grad-CAM maps of the true class `[N, H, W]`.
        pred_maps: maps of the predicted class `[N, H, W]` (the same as `maps` where right).
        masks: object masks `[N, H, W]`, or None when the dataset has none.
        scores: per-image metric values `[N]` by metric name.
    """

    indices: Tensor
    images: Tensor
    labels: Tensor
    probs: Tensor
    maps: Tensor
    pred_maps: Tensor
    masks: Tensor | None
    scores: dict[str, Tensor]

    @property
    def preds(self) -> Tensor:
        """Predicted classes `[N]`."""
        return self.probs.argmax(dim=1)

    @property
    def wrong(self) -> Tensor:
        """Boolean `[N]`: misclassified images."""
        return self.preds != self.labels


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
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    counts: dict[int, int] = {}
    chosen: list[int] = []
    for i in order.tolist():
        if limit is not None and len(chosen) >= limit:
            break
        label = int(labels[i])
        if counts.get(label, 0) < per_class:
            counts[label] = counts.get(label, 0) + 1
            chosen.append(i)
    return sorted(chosen)


def dataset_labels(dataset: Any) -> list[int]:
    """Every item's label: the dataset's `targets` if it has them, else read item by item."""
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return [int(t) for t in targets]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def load(dataset: Any, indices: Sequence[int]) -> tuple[Tensor, Tensor, Tensor | None]:
    """Model inputs `[N, 3, H, W]`, labels `[N]` and masks `[N, H, W]` (None without `mask`).

    Images go through the dataset's `normalize` when it has one (folder datasets yield uint8).
    """
    items = [dataset[i] for i in indices]
    images = torch.stack([torch.as_tensor(x) for x, _ in items])
    normalize = getattr(dataset, "normalize", None)
    if normalize is not None:
        images = normalize(images)
    labels = torch.tensor([int(y) for _, y in items])
    if not hasattr(dataset, "mask"):
        return images, labels, None
    return images, labels, torch.stack([torch.as_tensor(dataset.mask(i)) for i in indices])


def predict(cam: GradCAM, images: Tensor) -> Tensor:
    """Softmax probabilities `[N, C]` on the CPU, batched on the model's device."""
    device = next(cam.model.parameters()).device
    out = []
    with torch.no_grad(), eval_mode(cam.model):
        for start in range(0, len(images), cam.batch_size):
            logits = cam.model(images[start : start + cam.batch_size].to(device))
            out.append(logits.float().softmax(dim=1).cpu())
    return torch.cat(out)


def explain(
    cam: GradCAM,
    images: Tensor,
    labels: Tensor,
    masks: Tensor | None = None,
    indices: Sequence[int] | None = None,
    steps: int = 16,
    tolerance: int | None = None,
) -> Explanation:
    """Predict, map and score `images`.

    The pointing games score the true class's map (does the model look at the object?, as
    Zhang et al. 2016 do); deletion and insertion score the predicted class's map (is the map
    faithful to the model's decision?, as Petsiuk et al. 2018 do).

    Args:
        cam: the Grad-CAM of the model and layer.
        images: `[N, 3, H, W]`.
        labels: true classes `[N]`.
        masks: object masks `[N, H, W]`, if known.
        indices: dataset indices, kept for the record (default `0..N-1`).
        steps: deletion/insertion steps.
        tolerance: pointing-game tolerance in pixels (None: 15 px at 224 px, scaled).
    """
    probs = predict(cam, images)
    preds = probs.argmax(dim=1)
    maps = cam.attribute(images, labels).cpu()
    pred_maps = maps.clone()
    wrong = preds != labels
    if wrong.any():
        pred_maps[wrong] = cam.attribute(images[wrong], preds[wrong]).cpu()
    scores: dict[str, list[Tensor]] = {"deletion_auc": [], "insertion_auc": []}
    for start in range(0, len(images), cam.batch_size):
        part = slice(start, start + cam.batch_size)
        args = (cam.model, images[part], pred_maps[part], preds[part], steps)
        scores["deletion_auc"].append(deletion_auc(*args).cpu())
        scores["insertion_auc"].append(insertion_auc(*args).cpu())
    result = {name: torch.cat(values) for name, values in scores.items()}
    if masks is not None:
        result["pointing_game"] = pointing_game(maps, masks, tolerance)
        result["energy_pointing_game"] = energy_pointing_game(maps, masks)
    index = torch.arange(len(images)) if indices is None else torch.as_tensor(list(indices))
    return Explanation(index, images.cpu(), labels, probs, maps, pred_maps, masks, result)


def summarize(expl: Explanation, classes: Sequence[str], subset: Tensor | None = None) -> dict:
    """Mean accuracy and scores, overall and per class (classes with no image are left out).

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
    values = {"count": float(selected.sum()), "accuracy": (~expl.wrong[selected]).float().mean()}
    values.update({name: score[selected].mean() for name, score in expl.scores.items()})
    return {name: float(value) for name, value in values.items()}
