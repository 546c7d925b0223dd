"""LearningRateRangeTest: Lightning's LearningRateFinder, keeping each parameter group's ratio."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import matplotlib
import matplotlib.pyplot as plt
from lightning.pytorch.callbacks import LearningRateFinder
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override

from inception_lightning.callbacks._media import media_of

PLOT_TAG = "train/lr_range_test"
RESULTS_FILE = "lr_range_test.json"


class LearningRateRangeTest(LearningRateFinder):
    """The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural
    Networks", 2017) before training: Lightning's `LearningRateFinder` raises the lr from
    `min_lr` to `max_lr` over `num_training_steps` steps, then puts the weights back; the
    suggestion is the lr where the smoothed loss falls fastest.

    Lightning's own `update_attr` sets every parameter group to the suggestion, so the
    backbone's lower lr of fine-tuning (`backbone_lr_scale`) would be lost: here the heads'
    group (the optimiser's first when none is named "head") takes the suggestion and every
    group keeps its ratio to it, the schedulers' base lrs included. The loss-vs-lr curve goes
    to every logger that shows pictures (`train/lr_range_test`; TensorBoard, MLflow, W&B,
    CSV), and the curve and the suggestion to `lr_range_test.json` in the run's folder.

    Args:
        min_lr: the lr the test starts from.
        max_lr: the lr it ends at.
        num_training_steps: steps of the test (on the training data, before epoch 0).
        mode: "exponential" or "linear" growth of the lr.
        early_stop_threshold: end the test when the loss exceeds this multiple of the best
            loss so far; None: never.
        apply: train with the suggested lr; False only reports it.
    """

    def __init__(
        self,
        min_lr: float = 1e-6,
        max_lr: float = 1.0,
        num_training_steps: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
        apply: bool = True,
    ) -> None:
        super().__init__(
            min_lr, max_lr, num_training_steps, mode, early_stop_threshold, update_attr=False
        )
        self.apply = apply
        self.suggestion: float | None = None

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.lr_find(trainer, pl_module)
        if self.optimal_lr is None:  # fast_dev_run: Lightning skips the test
            return
        self.suggestion = self.optimal_lr.suggestion()
        if self.suggestion is None:
            rank_zero_info("lr range test: too few steps for a suggestion; the lr is unchanged")
            return
        was = _head_group(trainer)["lr"]
        if self.apply:
            _scale_lrs(trainer, self.suggestion / was)
        verb = "training with it" if self.apply else "not applied"
        rank_zero_info(f"lr range test: suggested lr {self.suggestion:.3g} (was {was:.3g}); {verb}")
        if trainer.is_global_zero:
            self._report(trainer, was)

    def _report(self, trainer: pl.Trainer, was: float) -> None:
        results = self.optimal_lr.results
        if trainer.log_dir is not None:
            path = Path(trainer.log_dir) / RESULTS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            values = {"suggestion": self.suggestion, "configured": was, **results}
            path.write_text(json.dumps(values, indent=1))
        media = media_of(trainer)
        if media:
            with matplotlib.rc_context({"backend": "agg"}):
                figure = self.optimal_lr.plot(suggest=True, show=False)
            for shown in media:
                shown.figure(PLOT_TAG, figure, 0)
            plt.close(figure)  # Lightning draws it with pyplot, which keeps it otherwise


def _head_group(trainer: pl.Trainer) -> dict:
    groups = trainer.optimizers[0].param_groups
    return next((g for g in groups if g.get("name") == "head"), groups[0])


def _scale_lrs(trainer: pl.Trainer, factor: float) -> None:
    """Multiply every group's lr, and the base lrs the schedulers read, by `factor`."""
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
    for config in trainer.lr_scheduler_configs:
        config.scheduler.base_lrs = [lr * factor for lr in config.scheduler.base_lrs]
