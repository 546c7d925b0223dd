"""Pictures of maps: overlays on the image, a captioned picture of them per image, and
randomisation curves."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from inception_lightning.explain.explainer import Explanation
from inception_lightning.explain.verdict import CheckResult


def to_rgb(pixels: Tensor) -> np.ndarray:
    """A uint8 `[3, H, W]` image as `uint8 [H, W, 3]`, its colours as stored."""
    return pixels.detach().cpu().permute(1, 2, 0).numpy()


def overlay(pixels: Tensor, cam: Tensor, alpha: float = 0.5) -> np.ndarray:
    """The map blended over the uint8 `[3, H, W]` image, `uint8 [H, W, 3]`.

    Non-negative maps are scaled by their maximum and drawn with "jet"; maps with negative
    values are scaled by their largest magnitude and drawn with the diverging "RdBu_r",
    white at zero.
    """
    m = cam.detach().float().cpu()
    if bool((m < 0).any()):
        m = m / (2 * m.abs().max()) + 0.5
        cmap = colormaps["RdBu_r"]
    else:
        m = m / m.max().clamp(min=1e-12)
        cmap = colormaps["jet"]
    heat = cmap(m.numpy())[..., :3]
    blend = (1 - alpha) * to_rgb(pixels) / 255.0 + alpha * heat
    return (np.clip(blend, 0, 1) * 255).round().astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of a `uint8 [H, W, 3]` array."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_pictures(
    expl: Explanation, classes: Sequence[str], note: str | None = None
) -> list[np.ndarray]:
    """One captioned picture per explained image, in the order of `expl`; `note` ends each
    title (which weights, ...).

    Two large tiles side by side, about 400 x 290 px, so that TensorBoard's image cards (about
    340 px wide by default, shrinking taller pictures further) keep the captions legible: a
    right prediction shows the image and the map of its class; a mistake shows the map of the
    predicted class beside that of the true class.
    """
    pictures = []
    for i in range(len(expl.labels)):
        label, pred = int(expl.labels[i]), int(expl.preds[i])
        prob = float(expl.probs[i, pred])
        title = f"#{int(expl.indices[i])}: {_short(classes[label], 20)}"
        title += f" ({note})" if note else ""
        if pred == label:
            tiles = [
                (to_rgb(expl.pixels[i]), "image"),
                (overlay(expl.pixels[i], expl.maps[i]), f"right, {prob:.2f}"),
            ]
        else:
            tiles = [
                (
                    overlay(expl.pixels[i], expl.pred_maps[i]),
                    f"pred {_short(classes[pred])}, {prob:.2f}",
                ),
                (overlay(expl.pixels[i], expl.maps[i]), f"true {_short(classes[label])}"),
            ]
        pictures.append(_row_figure(tiles, title))
    return pictures


def _short(name: str, limit: int = 14) -> str:
    """`name`, cut to `limit` characters with an ellipsis, so that captions fit their tile."""
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


def _row_figure(tiles: Sequence[tuple[np.ndarray, str]], title: str) -> np.ndarray:
    """Captioned tiles in a row under a title, rendered to `uint8 [H, W, 3]`."""
    fig = Figure(figsize=(2.0 * len(tiles), 2.7), dpi=100)
    for c, (tile, text) in enumerate(tiles):
        ax = fig.add_subplot(1, len(tiles), c + 1)
        ax.imshow(tile, interpolation="nearest")
        ax.set_title(text, fontsize=12, parse_math=False)
        ax.axis("off")
    fig.suptitle(title, fontsize=13, parse_math=False)
    return figure_rgb(fig)


def figure_rgb(fig: Figure) -> np.ndarray:
    """A matplotlib figure rendered to `uint8 [H, W, 3]`."""
    canvas = FigureCanvasAgg(fig)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def randomization_plot(checks: Mapping[str, Sequence[CheckResult]]) -> np.ndarray:
    """The randomisation checks' mean curves (MPRT in each order, sMPRT): a panel per check,
    a line per method labelled with its verdict, the threshold dotted.

    Args:
        checks: each method's check results (those without a curve, or ROAD's, are skipped).
    """
    names = [
        c.name
        for results in checks.values()
        for c in results
        if c.curve is not None and c.kind in ("mprt", "smprt")
    ]
    names = list(dict.fromkeys(names))
    fig = Figure(figsize=(4.2 * max(1, len(names)), 4), dpi=80)
    for p, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), p + 1)
        longest: list[str] = []
        for i, (method, results) in enumerate(checks.items()):
            result = next((c for c in results if c.name == name), None)
            if result is None or result.curve is None:
                continue
            x = range(len(result.curve.x))
            label = f"{method} ({result.verdict.outcome})"
            ax.plot(x, result.curve.y, "-o", color=f"C{i % 10}", markersize=3, label=label)
            longest = max(longest, [str(v) for v in result.curve.x], key=len)
            ax.set(xlabel=result.curve.xlabel, ylabel=result.curve.ylabel)
            ax.axhline(result.verdict.threshold, color="grey", linewidth=1, linestyle=":")
        ax.set_xticks(range(len(longest)), longest, rotation=90, fontsize=6)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=6, loc="best")
    return figure_rgb(fig)
