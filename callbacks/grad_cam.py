"""GradCam: Grad-CAM maps and attribution metrics of a validation sample, during training."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import nn
from typing_extensions import override

from inception_lightning.blocks import iter_blocks
from inception_lightning.explain.analysis import (
    Explanation,
    balanced_sample,
    dataset_labels,
    explain,
    load,
    predict,
    summarize,
)
from inception_lightning.explain.gradcam import (
    INTERPOLATIONS,
    SIGN_MODES,
    GradCAM,
    Interpolation,
    SignMode,
    default_layer,
    layer_grids,
)
from inception_lightning.explain.render import caption, grid, overlay
from inception_lightning.explain.report import write_report

MIN_GRID = 7


class GradCam(Callback):
    """Log Grad-CAM overlays and `gradcam/<metric>` scalars for a fixed validation sample.

    Every `every_n_epochs` validation epochs of `fit` (and at every `validate` / `test`), on
    global rank 0 only, the callback explains a class-balanced sample of the validation (test)
    set, drawn once with `seed`, plus up to `max_misclassified` currently misclassified images
    found among the next `misclassified_search` images of the same seeded order. It logs:

    - `gradcam/overlays`: a grid of overlays captioned with true class, predicted class and
      its probability; misclassified images show maps for both predicted and true class;
    - `gradcam/deletion_auc` (lower is better), `gradcam/insertion_auc` (higher is better) and,
      when the dataset has `mask(index)`, `gradcam/pointing_game` and
      `gradcam/energy_pointing_game` (higher is better), averaged over the fixed sample only.

    With several layers, tags become `gradcam/<layer>/...`. Maps are computed on
    `pl_module.model` under the trainer's precision context, with gradients even inside
    Lightning's `torch.inference_mode` loops, and the module's train/eval flags are restored.
    Ranks other than 0 do nothing and make no collective call, so none waits on another.

    Args:
        layers: dotted module name(s) of `pl_module.model`; None: its last Inception block.
        every_n_epochs: run at the end of every n-th validation epoch of `fit`.
        per_class: sample images per class.
        max_samples: the most sample images in all.
        max_misclassified: extra misclassified images per run.
        misclassified_search: images scanned for them per run.
        sign: "relu" (Grad-CAM), "abs" or "signed"; see `GradCAM`.
        interpolation: how maps are upsampled to the input size.
        steps: deletion/insertion steps.
        tolerance: pointing-game tolerance in pixels; None scales Zhang et al.'s 15 px at
            224 px to the input size.
        batch_size: images per forward/backward pass.
        seed: seeds the sample.
        report_dir: write an attribution report there at the end of `fit` (first layer).
        report_per_class: report images per class.
    """

    def __init__(
        self,
        layers: str | Sequence[str] | None = None,
        every_n_epochs: int = 1,
        per_class: int = 2,
        max_samples: int = 32,
        max_misclassified: int = 8,
        misclassified_search: int = 128,
        sign: SignMode = "relu",
        interpolation: Interpolation = "bilinear",
        steps: int = 16,
        tolerance: int | None = None,
        batch_size: int = 32,
        seed: int = 0,
        report_dir: str | Path | None = None,
        report_per_class: int = 8,
    ) -> None:
        names = [layers] if isinstance(layers, str) else layers
        if names is not None and (not names or not all(isinstance(n, str) and n for n in names)):
            raise ValueError(f"layers must be a module name or a non-empty list of them: {layers}")
        positive = {
            "every_n_epochs": every_n_epochs,
            "per_class": per_class,
            "max_samples": max_samples,
            "steps": steps,
            "batch_size": batch_size,
            "report_per_class": report_per_class,
        }
        for key, value in positive.items():
            if value < 1:
                raise ValueError(f"{key} must be positive, got {value}")
        if min(max_misclassified, misclassified_search, tolerance or 0) < 0:
            raise ValueError("max_misclassified, misclassified_search and tolerance must be >= 0")
        if sign not in SIGN_MODES:
            raise ValueError(f"sign must be one of {SIGN_MODES}, got {sign!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}: {interpolation!r}")
        self.layers = None if names is None else list(names)
        self.every_n_epochs = every_n_epochs
        self.per_class = per_class
        self.max_samples = max_samples
        self.max_misclassified = max_misclassified
        self.misclassified_search = misclassified_search
        self.sign = sign
        self.interpolation = interpolation
        self.steps = steps
        self.tolerance = tolerance
        self.batch_size = batch_size
        self.seed = seed
        self.report_dir = None if report_dir is None else Path(report_dir)
        self.report_per_class = report_per_class
        self.samples: dict[str, list[int]] = {}
        self.last: dict[str, Explanation] = {}
        self.last_metrics: dict[str, float] = {}
        self._warned = False

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if isinstance(trainer.strategy, FSDPStrategy | ModelParallelStrategy):
            raise ValueError(
                "GradCam runs the model on rank 0 alone, which sharded strategies (FSDP, "
                "ModelParallel) cannot do; use DDP or a single device"
            )
        self._cams(pl_module)  # checks the layer names only: no hook is registered here

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        due = (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if trainer.state.fn != TrainerFn.FITTING or due:
            self._run(trainer, pl_module, "val")

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._run(trainer, pl_module, "test")

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.report_dir is None or not trainer.is_global_zero:
            return
        dataset = _dataset(trainer, "val")
        labels = dataset_labels(dataset)
        indices = balanced_sample(labels, self.report_per_class, self.seed)
        images, targets, masks = load(dataset, indices)
        cam = self._cams(pl_module)[0]
        with trainer.precision_plugin.forward_context():
            expl = explain(cam, images, targets, masks, indices, self.steps, self.tolerance)
        info = {
            "model": getattr(cam.model, "name", type(cam.model).__name__),
            "layer": cam.layer,
            "sign": self.sign,
            "interpolation": self.interpolation,
            "epochs": trainer.current_epoch,
            "global step": trainer.global_step,
            "best checkpoint": getattr(trainer.checkpoint_callback, "best_model_path", "") or "-",
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        write_report(self.report_dir, expl, _classes(dataset, expl), info, self.report_per_class)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"samples": {k: list(v) for k, v in self.samples.items()}}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.samples = {k: list(v) for k, v in state_dict["samples"].items()}

    def _cams(self, pl_module: pl.LightningModule) -> list[GradCAM]:
        model = getattr(pl_module, "model", None)
        if not isinstance(model, nn.Module):
            raise ValueError("GradCam needs the network as `pl_module.model`")
        names = self.layers or [default_layer(model)]
        args = (self.sign, self.interpolation, self.batch_size)
        return [GradCAM(model, name, *args) for name in names]

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        dataset = _dataset(trainer, stage)
        if stage not in self.samples:
            labels = dataset_labels(dataset)
            self.samples[stage] = balanced_sample(
                labels, self.per_class, self.seed, self.max_samples
            )
        sample = self.samples[stage]
        cams = self._cams(pl_module)
        images, labels, _ = load(dataset, sample[:1])
        self._check_grid(cams, tuple(images.shape[-2:]))
        with trainer.precision_plugin.forward_context():
            extra = self._misclassified(cams[0], dataset, set(sample))
            indices = sample + extra
            images, labels, masks = load(dataset, indices)
            self.last = {
                cam.layer: explain(cam, images, labels, masks, indices, self.steps, self.tolerance)
                for cam in cams
            }
        in_sample = torch.arange(len(indices)) < len(sample)
        self.last_metrics = {}
        for layer, expl in self.last.items():
            prefix = "gradcam/" if len(cams) == 1 else f"gradcam/{layer}/"
            overall = summarize(expl, _classes(dataset, expl), in_sample)["overall"]
            self.last_metrics.update({prefix + k: overall[k] for k in expl.scores})
            self._log_grid(trainer, prefix + "overlays", expl, _classes(dataset, expl))
        for logger in trainer.loggers:
            logger.log_metrics(self.last_metrics, step=trainer.global_step)

    def _misclassified(self, cam: GradCAM, dataset: Any, taken: set[int]) -> list[int]:
        if self.max_misclassified == 0:
            return []
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))
        pool = [i for i in order.tolist() if i not in taken][: self.misclassified_search]
        found: list[int] = []
        for start in range(0, len(pool), self.batch_size):
            chunk = pool[start : start + self.batch_size]
            images, labels, _ = load(dataset, chunk)
            wrong = (predict(cam, images).argmax(dim=1) != labels).tolist()
            found += [i for i, w in zip(chunk, wrong, strict=True) if w]
            if len(found) >= self.max_misclassified:
                break
        return found[: self.max_misclassified]

    def _check_grid(self, cams: list[GradCAM], size: tuple[int, int]) -> None:
        if self._warned:
            return
        self._warned = True
        model = cams[0].model
        blocks = [name for name, _ in iter_blocks(model)]
        grids = layer_grids(model, [*blocks, *(c.layer for c in cams)], size)
        fine = [name for name in blocks if min(grids[name]) >= MIN_GRID]
        for cam in cams:
            if min(grids[cam.layer]) < MIN_GRID:
                earlier = f"an earlier layer such as {fine[-1]!r}" if fine else "an earlier layer"
                rank_zero_warn(
                    f"GradCam: layer {cam.layer!r} gives a {grids[cam.layer][0]}x"
                    f"{grids[cam.layer][1]} map at {size[0]}x{size[1]} input, coarser than "
                    f"{MIN_GRID}x{MIN_GRID}, so it locates little. Use the low-resolution stem "
                    f"(create_model(..., stem='79')) or {earlier}."
                )

    def _log_grid(
        self, trainer: pl.Trainer, tag: str, expl: Explanation, classes: Sequence[str]
    ) -> None:
        tiles, captions = [], []
        for i, (label, pred) in enumerate(
            zip(expl.labels.tolist(), expl.preds.tolist(), strict=True)
        ):
            prob = float(expl.probs[i, pred])
            if label == pred:
                tiles.append(overlay(expl.images[i], expl.maps[i]))
                captions.append(caption(classes[label], classes[pred], prob))
                continue
            tiles += [
                overlay(expl.images[i], expl.pred_maps[i]),
                overlay(expl.images[i], expl.maps[i]),
            ]
            captions += [
                caption(classes[label], classes[pred], prob, classes[pred]),
                caption(classes[label], classes[pred], prob, classes[label]),
            ]
        picture = grid(tiles, captions)
        for logger in trainer.loggers:
            add_image = getattr(logger.experiment, "add_image", None)
            if add_image is not None:
                add_image(tag, picture, trainer.global_step, dataformats="HWC")


def _dataset(trainer: pl.Trainer, stage: str) -> Any:
    loaders = trainer.val_dataloaders if stage == "val" else trainer.test_dataloaders
    if isinstance(loaders, Sequence):
        loaders = loaders[0]
    if loaders is None:
        raise ValueError(f"GradCam needs a {stage} dataloader")
    return loaders.dataset


def _classes(dataset: Any, expl: Explanation) -> list[str]:
    classes = getattr(dataset, "classes", None)
    return list(classes) if classes else [str(c) for c in range(expl.probs.shape[1])]


__all__ = ["GradCam"]
