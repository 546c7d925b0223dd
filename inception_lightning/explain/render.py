"""Pictures of maps: overlays on the image, a captioned grid of them, randomisation curves."""

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
from inception_lightning.explain.sanity import RandomizationCurve


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


def figure_rgb(fig: Figure) -> np.ndarray:
    """A matplotlib figure rendered to `uint8 [H, W, 3]`."""
    canvas = FigureCanvasAgg(fig)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def grid(
    tiles: Sequence[np.ndarray],
    captions: Sequence[str],
    columns: int = 6,
    title: str | None = None,
) -> np.ndarray:
    """The tiles in a captioned grid, rendered to `uint8 [H, W, 3]`, under an optional title.

    Captions are drawn as plain text (no mathtext), since class names may hold anything.
    """
    rows = max(1, -(-len(tiles) // columns))
    cols = max(1, min(columns, len(tiles)))
    fig = Figure(figsize=(2.2 * cols, 2.5 * rows), dpi=80)
    for i, (tile, caption) in enumerate(zip(tiles, captions, strict=True)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(tile)
        ax.set_title(caption, fontsize=7, parse_math=False)
        ax.axis("off")
    if title is not None:
        fig.suptitle(title, fontsize=9, parse_math=False)
    return figure_rgb(fig)


def randomization_plot(curves: Mapping[str, RandomizationCurve]) -> np.ndarray:
    """Cascading randomisation curves by method: rank correlation (solid) and SSIM (dashed)
    against the depth, with the pass threshold and the depth the verdict reads."""
    fig = Figure(figsize=(8, 4), dpi=80)
    ax = fig.add_subplot(1, 1, 1)
    depths: list[str] = []
    for i, (method, curve) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        verdict = "pass" if curve.passed else "FAIL"
        x = range(len(curve.depths))
        label = f"{method} ({verdict})"
        ax.plot(x, curve.rank_correlation, "-o", color=colour, markersize=3, label=label)
        ax.plot(x, curve.ssim, "--", color=colour, linewidth=1)
        depths = max(depths, curve.depths, key=len)
    if curves:
        first = next(iter(curves.values()))
        ax.axhline(first.threshold, color="grey", linewidth=1, linestyle=":")
        ax.axvline(first.verdict_depth, color="grey", linewidth=1, linestyle=":")
    labels = [d.removeprefix("features.") for d in depths]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_ylim(-0.3, 1.05)
    ax.set_xlabel("randomised down to (cumulative, from the head)")
    ax.set_ylabel("rank correlation (solid), SSIM (dashed)")
    ax.legend(fontsize=7, loc="lower left")
    return figure_rgb(fig)


def caption(true: str, pred: str, prob: float, target: str | None = None) -> str:
    """`true / pred (prob)`, with the map's class when it is neither the default."""
    text = f"true: {true}\npred: {pred} ({prob:.2f})"
    return text if target is None else f"{text}\nmap: {target}"


def explanation_grid(
    expl: Explanation, classes: Sequence[str], title: str | None = None
) -> np.ndarray:
    """Every explained image's overlay, captioned; a mistake shows the maps of the predicted
    class and of the true class side by side. `title` heads the grid (which weights, ...)."""
    tiles, captions = [], []
    for i, (label, pred) in enumerate(zip(expl.labels.tolist(), expl.preds.tolist(), strict=True)):
        prob = float(expl.probs[i, pred])
        if label == pred:
            tiles.append(overlay(expl.pixels[i], expl.maps[i]))
            captions.append(caption(classes[label], classes[pred], prob))
            continue
        tiles += [overlay(expl.pixels[i], expl.pred_maps[i]), overlay(expl.pixels[i], expl.maps[i])]
        captions += [
            caption(classes[label], classes[pred], prob, classes[pred]),
            caption(classes[label], classes[pred], prob, classes[label]),
        ]
    return grid(tiles, captions, title=title)
