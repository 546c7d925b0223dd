"""The report's plots, as PNG bytes: deletion and insertion curves, reliability, confusions."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from inception_lightning.explain.predictions import Reliability

LABELLED_CLASSES = 30  # beyond this, a confusion matrix's axes name no class


def curves_png(curves: Mapping[str, Mapping[str, Tensor]]) -> bytes:
    """Each method's mean deletion and insertion curves with their interquartile band.

    Args:
        curves: by method, `[N, K]` target probabilities by "deletion" / "insertion", from the
            intact (deletion) or blurred (insertion) image at x = 0 to the other end at x = 1;
            rows of NaN (empty maps) are left out.
    """
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    axes = dict(zip(("deletion", "insertion"), figure.subplots(1, 2, sharey=True), strict=True))
    for i, (method, by_name) in enumerate(curves.items()):
        for name, ax in axes.items():
            values = by_name[name].float().numpy()
            values = values[~np.isnan(values).any(axis=1)]
            if not len(values):
                continue
            x = np.linspace(0, 1, values.shape[1])
            area = np.trapezoid(values, x, axis=1).mean()
            ax.plot(x, values.mean(axis=0), color=f"C{i % 10}", label=f"{method} ({area:.3f})")
            low, high = np.percentile(values, [25, 75], axis=0)
            ax.fill_between(x, low, high, color=f"C{i % 10}", alpha=0.12, linewidth=0)
    better = {"deletion": "lower is better", "insertion": "higher is better"}
    for name, ax in axes.items():
        ax.set(xlabel="fraction of pixels moved, most salient first", xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"{name.capitalize()} (mean AUC; {better[name]})")
        ax.legend(loc="best", fontsize=8)
    axes["deletion"].set_ylabel("target probability")
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
