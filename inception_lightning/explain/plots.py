"""The report's plots, as PNG bytes: deletion and insertion curves, reliability, confusions."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from inception_lightning.explain.predictions import Reliability

LABELLED_CLASSES = 30  # beyond this, a confusion matrix's axes name no class


def curves_png(curves: dict[str, Tensor]) -> bytes:
    """Mean deletion and insertion curves with their interquartile band.

    Args:
        curves: `[N, K]` target probabilities by "deletion" / "insertion", from the intact
            (deletion) or blurred (insertion) image at x = 0 to the other end at x = 1.
    """
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    ax = figure.subplots()
    for name, colour in (("deletion", "tab:red"), ("insertion", "tab:blue")):
        values = curves[name].float().numpy()
        x = np.linspace(0, 1, values.shape[1])
        area = np.trapezoid(values, x, axis=1).mean()
        ax.plot(x, values.mean(axis=0), color=colour, label=f"{name} (mean AUC {area:.3f})")
        low, high = np.percentile(values, [25, 75], axis=0)
        ax.fill_between(x, low, high, color=colour, alpha=0.15, linewidth=0)
    ax.set(xlabel="fraction of pixels moved, most salient first", ylabel="target probability")
    ax.set(xlim=(0, 1), ylim=(0, 1), title="Deletion (lower is better), insertion (higher)")
    ax.legend(loc="best")
    return _png(figure)


def reliability_png(reliability: Reliability) -> bytes:
    """Accuracy against confidence per bin, the diagonal of perfect calibration, and the
    images per bin."""
    bins = len(reliability.counts)
    edges = np.linspace(0, 1, bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1 / bins
    figure = Figure(figsize=(5, 5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    accuracy = np.nan_to_num(reliability.accuracy.numpy())
    confidence = np.nan_to_num(reliability.confidence.numpy(), nan=0.0)
    top.bar(centres, accuracy, width, edgecolor="black", label="accuracy")
    gap = confidence - accuracy
    # hatched, not filled: over- and under-confidence both stay visible over the accuracy bars
    top.bar(
        centres, gap, width, bottom=accuracy, facecolor="none", edgecolor="tab:red", hatch="//",
        label="gap to confidence",
    )  # fmt: skip
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    top.set_title(f"Reliability: ECE {reliability.ece:.3f} ({bins} bins, as val/ece)")
    top.legend(loc="upper left")
    bottom.bar(centres, reliability.counts.numpy(), width, color="grey")
    bottom.set(xlabel="confidence (top-1 probability)", ylabel="images")
    return _png(figure)


def confusion_png(confusion: Tensor, classes: Sequence[str]) -> bytes:
    """The confusion matrix, each row (true class) as shares of its images."""
    counts = confusion.float().numpy()
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(12.0, 3 + 0.3 * len(classes))
    figure = Figure(figsize=(size + 1, size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(shares, vmin=0, vmax=1, cmap="Blues")
    figure.colorbar(image, ax=ax, label="share of the true class's images")
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix")
    if len(classes) <= LABELLED_CLASSES:
        ticks = range(len(classes))
        ax.set_xticks(ticks, [_plain(c) for c in classes], rotation=60, ha="right")
        ax.set_yticks(ticks, [_plain(c) for c in classes])
    return _png(figure)


def _plain(text: str) -> str:
    """Class names as plain text: matplotlib would read `$...$` as mathtext."""
    return text.replace("$", r"\$")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()
