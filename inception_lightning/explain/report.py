"""A self-contained static attribution report: index.html, PNG overlays and summary.json."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader

from inception_lightning.explain.explainer import Explanation, summarize
from inception_lightning.explain.render import overlay, png_bytes, to_rgb
from inception_lightning.files import atomic_write

_ENV = Environment(
    loader=PackageLoader("inception_lightning.explain", "templates"), autoescape=True
)


def safe_name(text: str, limit: int = 40) -> str:
    """A file-name fragment of `[A-Za-z0-9_-]` only, never empty."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:limit].strip("_") or "x"


def write_atomic(out: Path, relative: str, data: bytes) -> str:
    """Write `data` to `out / relative` atomically (`files.atomic_write`); refuse any path
    that resolves outside `out`. Returns `relative`."""
    root = out.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ValueError(f"refusing to write {relative!r} outside {root}")
    atomic_write(target, data)
    return relative


def write_report(
    out: str | Path,
    expl: Explanation,
    classes: Sequence[str],
    info: Mapping[str, Any],
    per_class: int = 4,
) -> Path:
    """Write the report for explained images into `out` and return the index.html path.

    Args:
        out: the report folder (created); nothing is written outside it.
        expl: the explained images; metrics are averaged over all of them.
        classes: class names by index (any text: it is escaped and never used raw in paths).
        info: run and model details shown as given (model, checkpoint, layer, ...).
        per_class: gallery images per class.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(expl, classes)
    items = [_item(out, expl, classes, i) for i in range(len(expl.labels))]
    gallery = []
    for c, name in enumerate(classes):
        chosen = [item for item in items if item["label"] == c][:per_class]
        if chosen:
            gallery.append({"name": name, "images": chosen})
    context = {
        "info": {str(k): str(v) for k, v in info.items()},
        "metric_names": ["count", "accuracy", *expl.scores],
        "summary": summary,
        "gallery": gallery,
        "misclassified": [item for item in items if item["wrong"]],
    }
    html = _ENV.get_template("report.html").render(**context)
    write_atomic(out, "index.html", html.encode())
    record = {"info": context["info"], **summary, "images": items}
    write_atomic(out, "summary.json", json.dumps(record, indent=2).encode())
    return out / "index.html"


def _item(out: Path, expl: Explanation, classes: Sequence[str], i: int) -> dict[str, Any]:
    index, label, pred = int(expl.indices[i]), int(expl.labels[i]), int(expl.preds[i])
    stem = f"img/{index:06d}-{safe_name(classes[label])}"
    image = expl.pixels[i]
    files = {
        "original": write_atomic(out, f"{stem}-original.png", png_bytes(to_rgb(image))),
        "overlay": write_atomic(out, f"{stem}-true.png", png_bytes(overlay(image, expl.maps[i]))),
    }
    if pred != label:
        pred_png = png_bytes(overlay(image, expl.pred_maps[i]))
        files["pred_overlay"] = write_atomic(out, f"{stem}-pred.png", pred_png)
    top = expl.probs[i].topk(min(3, expl.probs.shape[1]))
    return {
        "index": index,
        "label": label,
        "true": classes[label],
        "pred": classes[pred],
        "wrong": pred != label,
        "top3": [
            {"name": classes[int(c)], "prob": float(p)}
            for p, c in zip(top.values, top.indices, strict=True)
        ],
        "scores": {name: float(s[i]) for name, s in expl.scores.items()},
        "files": files,
    }
