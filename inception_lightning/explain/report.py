"""A self-contained static attribution report: index.html, PNG overlays and plots, summary.json."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader

from inception_lightning.explain.explainer import Explanation, summarize
from inception_lightning.explain.plots import confusion_png, curves_png, reliability_png
from inception_lightning.explain.predictions import Predictions
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
    predictions: Predictions | None = None,
) -> Path:
    """Write the report for explained images into `out` and return the index.html path.

    Classes are listed by accuracy, worst first: over `predictions` when given (the whole
    dataset), else over the explained images. Plots: the mean deletion and insertion curves
    and, with `predictions`, a reliability diagram and a confusion matrix.

    Args:
        out: the report folder (created); nothing is written outside it.
        expl: the explained images; metrics are averaged over all of them.
        classes: class names by index (any text: it is escaped and never used raw in paths).
        info: run and model details shown as given (model, checkpoint, layer, ...).
        per_class: gallery images per class.
        predictions: the model's predictions on the whole dataset (`predict_dataset`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(expl, classes)
    items = [_item(out, expl, classes, i) for i in range(len(expl.labels))]
    accuracy = _class_accuracy(summary, classes, predictions)
    order = sorted(range(len(classes)), key=lambda c: (_sort_key(accuracy[c]), c))
    summary["per_class"] = {
        classes[c]: summary["per_class"][classes[c]]
        for c in order
        if classes[c] in summary["per_class"]
    }
    gallery = []
    for c in order:
        chosen = [item for item in items if item["label"] == c][:per_class]
        if chosen:
            gallery.append({"name": classes[c], "accuracy": accuracy[c], "images": chosen})
    evaluation = None if predictions is None else _evaluation(predictions, classes, order)
    context = {
        "info": {str(k): str(v) for k, v in info.items()},
        "metric_names": ["count", "accuracy", *expl.scores],
        "summary": summary,
        "gallery": gallery,
        "misclassified": [item for item in items if item["wrong"]],
        "evaluation": evaluation,
        "plots": _plots(out, expl, predictions, classes),
    }
    html = _ENV.get_template("report.html").render(**context)
    write_atomic(out, "index.html", html.encode())
    record = {"info": context["info"], **summary, "evaluation": evaluation, "images": items}
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


def _class_accuracy(
    summary: dict[str, Any], classes: Sequence[str], predictions: Predictions | None
) -> list[float]:
    """Accuracy per class index: over all predictions, else over the explained images (NaN
    for a class with none)."""
    if predictions is not None:
        return predictions.class_accuracy().tolist()
    per_class = summary["per_class"]
    return [per_class[name]["accuracy"] if name in per_class else math.nan for name in classes]


def _sort_key(accuracy: float) -> float:
    """Worst first; classes without images last."""
    return math.inf if math.isnan(accuracy) else accuracy


def _evaluation(
    predictions: Predictions, classes: Sequence[str], order: Sequence[int]
) -> dict[str, Any]:
    """Accuracy and calibration over the whole dataset; per class, its images, accuracy and
    the class it is most often mistaken for."""
    confusion = predictions.confusion()
    accuracy = predictions.class_accuracy()
    rows = []
    for c in order:
        images = int(confusion[c].sum())
        mistakes = confusion[c].clone()
        mistakes[c] = 0
        worst = int(mistakes.argmax())
        rows.append(
            {
                "name": classes[c],
                "images": images,
                "accuracy": None if images == 0 else float(accuracy[c]),
                "confused_with": classes[worst] if mistakes[worst] > 0 else None,
                "confused_share": float(mistakes[worst]) / images if images else 0.0,
            }
        )
    correct = float(confusion.diagonal().sum()) / max(int(confusion.sum()), 1)
    return {
        "images": len(predictions.labels),
        "accuracy": correct,
        "ece": predictions.reliability().ece,
        "per_class": rows,
    }


def _plots(
    out: Path, expl: Explanation, predictions: Predictions | None, classes: Sequence[str]
) -> dict[str, str]:
    """Write the plots into `out/plots`; their relative paths by name."""
    plots = {}
    if expl.curves:
        plots["curves"] = write_atomic(out, "plots/curves.png", curves_png(expl.curves))
    if predictions is not None:
        reliability = reliability_png(predictions.reliability())
        plots["reliability"] = write_atomic(out, "plots/reliability.png", reliability)
        confusion = confusion_png(predictions.confusion(), classes)
        plots["confusion"] = write_atomic(out, "plots/confusion.png", confusion)
    return plots
