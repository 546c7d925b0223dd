"""The report's plots, as PNG bytes: deletion and insertion curves, reliability, confusions."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from inception_lightning.explain.predictions import Reliability
from inception_lightning.explain.road import RoadCurves

LABELLED_CLASSES = 30  # beyond this, a confusion matrix's axes name no class


def curves_png(
    curves: Mapping[str, Mapping[str, Tensor]], road: Mapping[str, RoadCurves] | None = None
) -> bytes:
    """Each method's mean deletion and insertion curves with their interquartile band, and
    ROAD's MoRF and LeRF curves beside them when given.

    Args:
        curves: by method, `[N, K]` target probabilities by "deletion" / "insertion", from the
            intact (deletion) or blurred (insertion) image at x = 0 to the other end at x = 1;
            rows of NaN (empty maps) are left out.
        road: by method, its ROAD curves (`road.road_curves`).
    """
    road = road or {}
    panels = ["deletion", "insertion"] + (["road_morf", "road_lerf"] if road else [])
    figure = Figure(figsize=(5 * len(panels), 3.8), layout="constrained")
    axes = dict(zip(panels, figure.subplots(1, len(panels), sharey=True), strict=True))
    for i, method in enumerate(dict.fromkeys([*curves, *road])):
        series = {name: (None, values) for name, values in curves.get(method, {}).items()}
        if method in road:
            x = np.asarray(road[method].fractions)
            series.update(road_morf=(x, road[method].morf), road_lerf=(x, road[method].lerf))
        for name, (x, tensor) in series.items():
            values = tensor.float().numpy()
            values = values[~np.isnan(values).any(axis=1)]
            if not len(values) or name not in axes:
                continue
            x = np.linspace(0, 1, values.shape[1]) if x is None else x
            area = np.trapezoid(values, x, axis=1).mean() / (x[-1] - x[0])
            ax = axes[name]
            ax.plot(x, values.mean(axis=0), color=f"C{i % 10}", label=f"{method} ({area:.3f})")
            low, high = np.percentile(values, [25, 75], axis=0)
            ax.fill_between(x, low, high, color=f"C{i % 10}", alpha=0.12, linewidth=0)
    titles = {
        "deletion": "Deletion (mean AUC; lower is better)",
        "insertion": "Insertion (mean AUC; higher is better)",
        "road_morf": "ROAD MoRF (mean area; lower is better)",
        "road_lerf": "ROAD LeRF (mean area; higher is better)",
    }
    for name, ax in axes.items():
        action = "imputed" if name.startswith("road") else "moved"
        first = "least" if name == "road_lerf" else "most"
        xlabel = f"fraction of pixels {action}, {first} salient first"
        ax.set(xlabel=xlabel, xlim=(0, 1), ylim=(0, 1))
        ax.set_title(titles[name])
        if ax.lines:
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
