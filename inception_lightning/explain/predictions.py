"""The model's predictions on a whole dataset: accuracy per class, confusions and calibration.

The report's plots and class order come from these, not from the few images it explains.
Calibration is measured as the module logs it (`val/ece`: torchmetrics' 15-bin, L1 expected
calibration error), so the report's number is the one in TensorBoard for the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchmetrics.functional.classification import (
    multiclass_calibration_error,
    multiclass_confusion_matrix,
)

from inception_lightning.console import track
from inception_lightning.data.protocol import LabelledImages
from inception_lightning.explain.attribution import Attribution
from inception_lightning.explain.explainer import predict_probs

BINS = 15  # InceptionClassifier's MulticlassCalibrationError(n_bins=15)


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's bins: equal-width intervals of the top-1 confidence.

    Args:
        confidence: mean confidence per bin `[B]` (NaN where empty).
        accuracy: top-1 accuracy per bin `[B]` (NaN where empty).
        counts: images per bin `[B]`.
        ece: expected calibration error (torchmetrics', as `val/ece`).
    """

    confidence: Tensor
    accuracy: Tensor
    counts: Tensor
    ece: float


@dataclass(frozen=True)
class Predictions:
    """Softmax probabilities `probs [N, C]` and true classes `labels [N]` of a dataset."""

    probs: Tensor
    labels: Tensor

    @property
    def num_classes(self) -> int:
        """C."""
        return self.probs.shape[1]

    def confusion(self) -> Tensor:
        """Counts `[C, C]`: row = true class, column = predicted class."""
        return multiclass_confusion_matrix(self.probs, self.labels, self.num_classes)

    def class_accuracy(self) -> Tensor:
        """Top-1 accuracy per true class `[C]` (NaN for a class with no image)."""
        confusion = self.confusion().float()
        return confusion.diagonal() / confusion.sum(dim=1)

    def reliability(self, bins: int = BINS) -> Reliability:
        """The reliability diagram's bins and the ECE (`val/ece`'s definition)."""
        confidence, predicted = self.probs.max(dim=1)
        correct = (predicted == self.labels).float()
        # torchmetrics' bucketing; a confidence of exactly 1.0 joins the last bin here.
        edges = torch.linspace(0, 1, bins + 1, dtype=confidence.dtype)
        index = (torch.bucketize(confidence, edges, right=True) - 1).clamp(max=bins - 1)
        counts = torch.zeros(bins).scatter_add_(0, index, torch.ones_like(confidence))
        mean_confidence = torch.zeros(bins).scatter_add_(0, index, confidence) / counts
        accuracy = torch.zeros(bins).scatter_add_(0, index, correct) / counts
        ece = multiclass_calibration_error(self.probs, self.labels, self.num_classes, n_bins=bins)
        return Reliability(mean_confidence, accuracy, counts, float(ece))


def predict_dataset(
    attribution: Attribution,
    dataset: LabelledImages,
    progress: bool | None = False,
    forward: nn.Module | None = None,
) -> Predictions:
    """Predict every image of `dataset` in batches of `cam.batch_size`, on the model's device.

    Args:
        attribution: the model (and its batch size).
        dataset: the images and labels.
        progress: show a bar (None: on a terminal; see `console.track`).
        forward: runs the forward passes instead of `cam.model` (e.g. `Bf16Forward`).
    """
    n, step = len(dataset), attribution.batch_size
    starts = track(
        range(0, n, step), "predicting", n, "images", progress, lambda i: min(step, n - i)
    )
    probs = []
    for start in starts:
        pixels = torch.stack([dataset[i][0] for i in range(start, min(start + step, n))])
        probs.append(predict_probs(attribution, dataset.normalize(pixels), forward))
    labels = torch.as_tensor([int(label) for label in dataset.labels])
    return Predictions(torch.cat(probs), labels)
