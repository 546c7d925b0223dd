"""A self-contained static attribution report: index.html, PNG overlays and plots, summary.json."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from jinja2 import Environment, PackageLoader

from inception_lightning.explain.checks import meaning
from inception_lightning.explain.comparison import MethodRun, comparison_rows
from inception_lightning.explain.explainer import summarize_explanation
from inception_lightning.explain.plots import confusion_png, curves_png, reliability_png
from inception_lightning.explain.predictions import Predictions
from inception_lightning.explain.render import overlay, png_bytes, randomization_plot, to_rgb
from inception_lightning.explain.verdict import CheckResult
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
    runs: Sequence[MethodRun],
    classes: Sequence[str],
    info: Mapping[str, Any],
    per_class: int = 4,
    predictions: Predictions | None = None,
) -> Path:
    """Write the report comparing methods on the same images into `out`; return index.html.

    It holds a table with one row per method (scores, empty maps, cost), each method's sanity
    checks (verdict with its interval, what it means, cost per image), the randomisation
    curves, per-class scores, a gallery by class with every method's map side by
    side, and the misclassified images with each method's maps of the predicted and true class.

    Classes are listed by accuracy, worst first: over `predictions` when given (the whole
    dataset), else over the explained images. Plots: each method's mean deletion and insertion
    curves (and ROAD's MoRF and LeRF curves when run) and, with `predictions`, a reliability
    diagram and a confusion matrix.

    Args:
        out: the report folder (created); nothing is written outside it.
        runs: one per method, all on the same images (`comparison.run_methods`).
        classes: class names by index (any text: it is escaped and never used raw in paths).
        info: run and model details shown as given (model, checkpoint, layers, ...).
        per_class: gallery images per class.
        predictions: the model's predictions on the whole dataset (`predict_dataset`).
    """
    if not runs:
        raise ValueError("write_report needs at least one method's run")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    first = runs[0].explanation
    items = [_item(out, runs, classes, i) for i in range(len(first.labels))]
    accuracy = _class_accuracy(summarize_explanation(first, classes), classes, predictions)
    order = sorted(range(len(classes)), key=lambda c: (_sort_key(accuracy[c]), c))
    gallery = []
    for c in order:
        chosen = [item for item in items if item["label"] == c][:per_class]
        if chosen:
            gallery.append({"name": classes[c], "accuracy": accuracy[c], "images": chosen})
    evaluation = None if predictions is None else _evaluation(predictions, classes, order)
    checks = {run.method: run.checks for run in runs if run.checks}
    sanity_png = None
    if any(c.curve is not None and c.kind != "road" for cs in checks.values() for c in cs):
        sanity_png = write_atomic(out, "sanity.png", png_bytes(randomization_plot(checks)))
    methods = [
        {
            **row,
            "per_class": _in_order(
                summarize_explanation(run.explanation, classes)["per_class"], classes, order
            ),
        }
        for row, run in zip(comparison_rows(runs, classes), runs, strict=True)
    ]
    context = {
        "info": {str(k): str(v) for k, v in info.items()},
        "methods": methods,
        "class_metrics": ["count", "accuracy", "empty", *first.scores],
        "sanity_png": sanity_png,
        "checks": {method: [_check_row(c) for c in results] for method, results in checks.items()},
        "check_names": list(dict.fromkeys(c.name for cs in checks.values() for c in cs)),
        "identical": identical_methods(runs),
        "gallery": gallery,
        "misclassified": [item for item in items if item["wrong"]],
        "method_names": [run.method for run in runs],
        "evaluation": evaluation,
        "plots": _plots(out, runs, predictions, classes),
    }
    html = _ENV.get_template("report.html").render(**context)
    write_atomic(out, "index.html", html.encode())
    record = {
        "info": context["info"],
        "evaluation": evaluation,
        "methods": [
            {**m, "sanity": [c.as_dict() for c in r.checks]}
            for m, r in zip(methods, runs, strict=True)
        ],
        "images": items,
    }
    write_atomic(out, "summary.json", json.dumps(_finite(record), indent=2).encode())
    return out / "index.html"


def identical_methods(runs: Sequence[MethodRun]) -> list[tuple[str, str]]:
    """Pairs of methods whose maps agree on every image (to 1e-5 of the peak): e.g. Grad-CAM
    and HiResCAM on a layer followed only by global pooling and one linear layer, where the
    gradient is the same at every position."""
    pairs = []
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            maps_a, maps_b = a.explanation.maps, b.explanation.maps
            if maps_a.shape == maps_b.shape and torch.allclose(maps_a, maps_b, atol=1e-5):
                pairs.append((a.method, b.method))
    return pairs


def _check_row(result: CheckResult) -> dict[str, Any]:
    verdict = result.verdict
    return {
        "name": result.name,
        "statistic": result.statistic,
        "outcome": verdict.outcome,
        "verdict": verdict.describe(),
        "meaning": meaning(result),
        "seconds_per_image": result.seconds_per_image,
        "details": {k: v for k, v in result.details.items() if k != "method"},
    }


def _item(out: Path, runs: Sequence[MethodRun], classes: Sequence[str], i: int) -> dict[str, Any]:
    expl = runs[0].explanation
    index, label, pred = int(expl.indices[i]), int(expl.labels[i]), int(expl.preds[i])
    stem = f"img/{index:06d}-{safe_name(classes[label])}"
    image = expl.pixels[i]
    files: dict[str, Any] = {
        "original": write_atomic(out, f"{stem}-original.png", png_bytes(to_rgb(image)))
    }
    for run in runs:
        maps = run.explanation
        name = f"{stem}-{safe_name(run.method)}"
        true_png = png_bytes(overlay(image, maps.maps[i]))
        files[run.method] = {"overlay": write_atomic(out, f"{name}-true.png", true_png)}
        if pred != label:
            pred_png = png_bytes(overlay(image, maps.pred_maps[i]))
            files[run.method]["pred_overlay"] = write_atomic(out, f"{name}-pred.png", pred_png)
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
        "empty": {run.method: bool(run.explanation.empty[i]) for run in runs},
        "scores": {
            run.method: {name: float(s[i]) for name, s in run.explanation.scores.items()}
            for run in runs
        },
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


def _in_order(
    per_class: Mapping[str, Any], classes: Sequence[str], order: Sequence[int]
) -> dict[str, Any]:
    """`per_class` (scores by class name) with its classes in `order`."""
    return {classes[c]: per_class[classes[c]] for c in order if classes[c] in per_class}


def _plots(
    out: Path, runs: Sequence[MethodRun], predictions: Predictions | None, classes: Sequence[str]
) -> dict[str, str]:
    """Write the plots into `out/plots`; their relative paths by name."""
    plots = {}
    curves = {run.method: run.explanation.curves for run in runs if run.explanation.curves}
    road = {run.method: run.explanation.road for run in runs if run.explanation.road is not None}
    if curves:
        plots["curves"] = write_atomic(out, "plots/curves.png", curves_png(curves, road))
    if predictions is not None:
        reliability = reliability_png(predictions.reliability())
        plots["reliability"] = write_atomic(out, "plots/reliability.png", reliability)
        confusion = confusion_png(predictions.confusion(), classes)
        plots["confusion"] = write_atomic(out, "plots/confusion.png", confusion)
    return plots


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
