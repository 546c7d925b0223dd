"""An attribution report for a trained checkpoint on an image folder."""

from __future__ import annotations

from pathlib import Path

import torch

from inception_lightning.data.evaluation import evaluation_dataset
from inception_lightning.explain.analysis import balanced_sample, dataset_labels, explain, load
from inception_lightning.explain.gradcam import GradCAM
from inception_lightning.explain.report import write_report
from inception_lightning.module import InceptionClassifier


def report_from_checkpoint(
    ckpt: str | Path,
    data: str | Path,
    out: str | Path,
    boxes_file: str | Path | None = None,
    image_size: int | None = None,
    per_class: int = 8,
    seed: int = 0,
    layer: str | None = None,
) -> Path:
    """Explain a class-balanced, seeded sample of `data` with the checkpoint's network.

    The network carries the EMA weights when the checkpoint has them (Lightning's
    `EMAWeightAveraging` stores the average as the checkpoint's `state_dict`).

    Args:
        ckpt: a checkpoint of `InceptionClassifier`.
        data: a class-per-folder tree (its `val/` split when it has one).
        out: the report folder.
        boxes_file: object boxes or masks, for the pointing-game scores.
        image_size: the input size; by default the size the model's stem is built for.
        per_class: images explained per class.
        seed: seeds the sample.
        layer: dotted name of the Grad-CAM layer (default: the last Inception block).

    Returns:
        The path of the report's index.html.
    """
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {str(ckpt)!r} does not exist or is not a file")
    module = InceptionClassifier.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    model = module.model.eval()
    size = image_size or int(model.stem)
    dataset = evaluation_dataset(data, size, boxes_file)
    if len(dataset.classes) != model.num_classes:
        raise ValueError(
            f"{data} has {len(dataset.classes)} classes but {ckpt.name} was trained on "
            f"{model.num_classes}; point --data at a folder with the training classes"
        )
    indices = balanced_sample(dataset_labels(dataset), per_class, seed=seed)
    images, labels, masks = load(dataset, indices)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cam = GradCAM(model.to(device), layer=layer)
    expl = explain(cam, images, labels, masks, indices)
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    info = {
        "checkpoint": str(ckpt),
        "model": module.hparams.model,
        "model_kwargs": dict(module.hparams.model_kwargs or {}),
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        "weights": "EMA" if "current_model_state" in checkpoint else "raw",
        "data": str(data),
        "image_size": size,
        "layer": cam.layer,
    }
    return write_report(out, expl, dataset.classes, info, per_class=per_class)
