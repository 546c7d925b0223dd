"""Pictures of maps: overlays on the image, and captioned pictures of them per class."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from inception_lightning.explain.explainer import Explanation


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


def class_grids(expl: Explanation, classes: Sequence[str]) -> dict[int, np.ndarray]:
    """One captioned picture per true class that has explained images, by class index.

    Two large tiles a row with large captions, so that they stay legible when TensorBoard
    shrinks the picture to its card (about 400 px wide): right predictions two a row, each
    with the map of its class; a mistake a row, the map of the predicted class beside that of
    the true class.
    """
    pictures = {}
    for label in dict.fromkeys(expl.labels.tolist()):
        rows: list[list[tuple[np.ndarray, str]]] = []
        right: list[tuple[np.ndarray, str]] = []
        for i in (expl.labels == label).nonzero()[:, 0].tolist():
            pred = int(expl.preds[i])
            prob = float(expl.probs[i, pred])
            if pred == label:
                right.append((overlay(expl.pixels[i], expl.maps[i]), f"right, {prob:.2f}"))
                continue
            predicted = overlay(expl.pixels[i], expl.pred_maps[i])
            true = overlay(expl.pixels[i], expl.maps[i])
            rows.append(
                [
                    (predicted, f"pred {_short(classes[pred])}, {prob:.2f}"),
                    (true, f"true {_short(classes[label])}"),
                ]
            )
        rows = [right[j : j + 2] for j in range(0, len(right), 2)] + rows
        pictures[label] = _rows_figure(rows, f"true class: {classes[label]}")
    return pictures


def _short(name: str, limit: int = 14) -> str:
    """`name`, cut to `limit` characters with an ellipsis, so that captions fit their tile."""
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


def _rows_figure(rows: Sequence[Sequence[tuple[np.ndarray, str]]], title: str) -> np.ndarray:
    """Captioned tiles, two columns, rendered to `uint8 [H, W, 3]` (400 px wide)."""
    fig = Figure(figsize=(4.0, 2.2 * len(rows) + 0.4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    for r, row in enumerate(rows):
        for c, (tile, text) in enumerate(row):
            ax = fig.add_subplot(len(rows), 2, 2 * r + c + 1)
            ax.imshow(tile, interpolation="nearest")
            ax.set_title(text, fontsize=12, parse_math=False)
            ax.axis("off")
    fig.suptitle(title, fontsize=13, parse_math=False)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
