"""`inception-lightning report`: an attribution report for a checkpoint on an image folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch

from inception_lightning.data.errors import DatasetError
from inception_lightning.data.folders.report_dataset import evaluation_dataset
from inception_lightning.data.transforms.preprocessing import Preprocessing, resolve_preprocessing
from inception_lightning.explain import (
    LAYER_METHODS,
    Bf16Forward,
    ExplainSpec,
    MapOptions,
    Method,
    SanityOptions,
    build_report,
)
from inception_lightning.path_checks import CheckpointFile, OutputFolder
from inception_lightning.training.checkpoints import Weights, load_network
from inception_lightning.training.cpu_recipe import native_bf16


def report(
    ckpt_path: CheckpointFile,
    data: str,
    out: OutputFolder,
    boxes_file: str | None = None,
    image_size: int | None = None,
    crop_pct: float | None = None,
    per_class: int = 8,
    seed: int = 0,
    layers: str | list[str] | None = None,
    weights: Weights | None = None,
    method: Method | Sequence[Method] = LAYER_METHODS,
    method_options: dict[str, dict[str, Any]] | None = None,
    sanity: SanityOptions = SanityOptions(),  # noqa: B008 (frozen, so never shared state)
    precision: Literal["auto", "32-true", "bf16-mixed"] = "auto",
) -> Path:
    """Write a static attribution report comparing methods: index.html, PNGs, summary.json.

    A seeded, class-balanced sample of the folder, preprocessed as the checkpoint says it was
    trained and its classes mapped by name, is explained with the checkpoint's network by each
    method, and each method's maps are sanity-checked (MPRT in three orders, sMPRT, eMPRT, the
    random-logit test and ROAD, each with a bootstrap verdict: `explain.checks`); every image
    of the folder is predicted for the accuracy per class, the confusion matrix and the
    reliability diagram (`explain.build_report`, as the GradCam callback writes it after fit).

    Args:
        ckpt_path: a checkpoint written while training InceptionClassifier.
        data: a class-per-folder tree (its val/ split when it has one); its classes must be
            among the checkpoint's (a subset is fine).
        out: the report folder (created; nothing is written outside it).
        boxes_file: object boxes or masks (make-dataset's boxes.json), for the pointing games.
        image_size: overrides the checkpoint's input size.
        crop_pct: overrides the checkpoint's centre-crop fraction.
        per_class: images explained per class.
        seed: seeds the sample.
        layers: dotted module name(s) for the layer methods, fused when several; null: the
            last Inception block.
        weights: "ema" (the averaged weights) or "raw"; null: those the checkpoint's
            state_dict holds (the average, when the run kept one).
        method: the attribution method(s) to compare; by default the Grad-CAM family
            (gradcam, guided_gradcam, hirescam, layercam); integrated_gradients and occlusion
            cost tens to hundreds of passes per map, so they are named when wanted.
        method_options: per method, its own settings, e.g. '{"occlusion": {"window": 8}}'.
        sanity: the sanity checks (`explain.SanityOptions`: samples, similarity, orders,
            checks, ...); by default every check on the sample's first 16 images.
        precision: of the forward-only work (predictions, deletion and insertion curves);
            maps, and the sanity check, are fp32 always. auto: bf16-mixed on a CPU with
            native bf16 (AMX or AVX512-BF16), else 32-true (on the quickstart bf16 moved no
            AUC by more than 0.004 and no top-1 class: benchmarks/bf16_forward.py).
    """
    spec = ExplainSpec(method, layers, MapOptions(method_options=method_options), seed=seed)
    loaded = load_network(ckpt_path, weights)
    network, description = loaded.network, loaded.description
    if description.preprocessing is None:  # an older checkpoint: Inception's, at the stem's size
        trained = Preprocessing(image_size=network.stem)
    else:
        trained = Preprocessing.from_dict(description.preprocessing)
    preprocessing = resolve_preprocessing(None, image_size, crop_pct, trained)
    dataset = evaluation_dataset(data, preprocessing, boxes_file, description.classes)
    if len(dataset.classes) != network.num_classes:
        raise DatasetError(
            f"{data} has {len(dataset.classes)} classes but {Path(ckpt_path).name} was trained "
            f"on {network.num_classes}; point --data at a folder with the training classes"
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision == "auto":
        precision = "bf16-mixed" if device.type == "cpu" and native_bf16() else "32-true"
    network = network.to(device)
    forward = None
    if precision == "bf16-mixed":
        network.to(memory_format=torch.channels_last)  # oneDNN's bf16 kernels work in NHWC
        forward = Bf16Forward(network)
    info = {
        "checkpoint": str(ckpt_path),
        "model": network.name,
        "epoch": loaded.checkpoint.get("epoch"),
        "global_step": loaded.checkpoint.get("global_step"),
        "weights": loaded.weights,
        "data": str(data),
        "preprocessing": asdict(preprocessing),
        "layers": spec.layer_names,
        "forward-only precision": precision,
    }
    return build_report(spec, network, dataset, out, info, per_class, sanity, None, forward)
