"""TensorBoardDashboards: the run's hparams tab and custom-scalars layout, its best scores, and
each class's validation accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from matplotlib.figure import Figure
from torch.utils.tensorboard.summary import hparams
from typing_extensions import override

from inception_lightning.callbacks._media import media_of
from inception_lightning.training.balanced_accuracy import BalancedAccuracy

PER_CLASS_TAG = "val/per_class_acc"
# The custom-scalars tab: curves that belong on one chart (regular expressions over tags).
LAYOUT = {
    "accuracy and loss": {
        "acc1: val and val_ema": ["Multiline", [r"^val/acc1$", r"^val_ema/acc1$"]],
        "loss: val and val_ema": ["Multiline", [r"^val/loss$", r"^val_ema/loss$"]],
        "loss: train and val": ["Multiline", [r"^train/loss$", r"^val/loss$"]],
    }
}


class TensorBoardDashboards(Callback):
    """Fill TensorBoard's hparams and custom-scalars tabs, and log the best validation scores.

    When training starts, every TensorBoard logger gets one hparams entry: the model, its width
    and stem, the optimiser's class and (head) lr, the scheduler, the batch size and the data
    (a folder's root, else the datamodule's class); its
    metrics are `<name>_best` for each name in `best`, logged after every validation as the
    highest value so far. Lightning's own entry would hold every hyperparameter of the module
    (`_instantiator` included) but no optimiser, and a placeholder `hp_metric`:
    `ExclusiveTensorBoardLogger` leaves it out (`default_hp_metric=False`), and so should any
    other TensorBoard logger used with this callback. The custom-scalars tab gets `LAYOUT`.

    After every validation in fit, each class's accuracy (its recall, from the module's
    `val/balanced_acc` metric) is drawn as one bar chart, `val/per_class_acc` (TensorBoard's
    images tab, or any logger that shows pictures), rather than one chart per class; the bars
    name each class's training images when the datamodule counted them
    (`train_class_counts`). `per_class` holds the last values.

    Args:
        best: logged metrics to track the highest value of (accuracies).
        hparams: further entries of the run's hparams tab (a sweep's trial number and the
            values it chose, keyed by their config keys).
    """

    def __init__(
        self,
        best: Sequence[str] = ("val/acc1", "val_ema/acc1"),
        hparams: dict[str, float | int | str | bool] | None = None,
    ) -> None:
        self.best_names = list(best)
        self.extra_hparams = dict(hparams or {})
        self.best: dict[str, float] = {}
        self.per_class: dict[str, float] = {}
        """Class name -> its accuracy at the last validation (NaN: not in the val set)."""

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:  # other ranks' loggers hold a dummy experiment
            return
        params = run_hyperparameters(trainer, pl_module) | self.extra_hparams
        metrics = {f"{name}_best": 0.0 for name in self.best_names}
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                writer = logger.experiment
                for summary in hparams(params, metrics):
                    writer.file_writer.add_summary(summary)
                writer.add_custom_scalars(LAYOUT)
            else:
                logger.log_hyperparams(params)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before Lightning computes and resets the epoch's metrics (after this hook)
        metrics = getattr(pl_module, "metrics", {})
        balanced = metrics["val"]["balanced_acc"] if "val" in metrics else None
        if trainer.sanity_checking or not isinstance(balanced, BalancedAccuracy):
            return
        with balanced.sync_context():  # every rank's counts
            recalls = balanced.per_class().tolist()
        data = trainer.datamodule
        classes = getattr(data, "classes", None) or [str(i) for i in range(len(recalls))]
        self.per_class = dict(zip(classes, recalls, strict=True))
        media = media_of(trainer)
        if not media:
            return
        counts = getattr(data, "train_class_counts", None)
        figure = per_class_figure(self.per_class, counts, trainer.current_epoch)
        for shown in media:
            shown.figure(PER_CLASS_TAG, figure, trainer.global_step)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        logged = trainer.callback_metrics
        found = {name: float(logged[name]) for name in self.best_names if name in logged}
        self.best.update(
            {name: max(value, self.best.get(name, value)) for name, value in found.items()}
        )
        metrics = {f"{name}_best": self.best[name] for name in found}
        for logger in trainer.loggers if metrics else ():
            logger.log_metrics(metrics, step=trainer.global_step)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"best": dict(self.best)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = dict(state_dict["best"])


def run_hyperparameters(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """What distinguishes one run from another, as plain values for the hparams tab."""
    hp = pl_module.hparams
    params: dict[str, Any] = {"model": hp.get("model", type(pl_module).__name__)}
    params |= {k: v for k, v in (hp.get("model_kwargs") or {}).items() if k in ("width", "stem")}
    if trainer.optimizers:
        optimizer = trainer.optimizers[0]
        groups = {group.get("name"): group for group in optimizer.param_groups}
        group = groups.get("head", optimizer.param_groups[0])
        params["optimizer"] = type(optimizer).__name__
        params["lr"] = group.get("initial_lr", group["lr"])
    configs = trainer.lr_scheduler_configs
    params["scheduler"] = type(configs[0].scheduler).__name__ if configs else "none"
    data = trainer.datamodule
    params["batch_size"] = getattr(data, "batch_size", None)
    params["data"] = str(getattr(data, "root", None) or type(data).__name__ if data else "loaders")
    return {k: "none" if v is None else v for k, v in params.items()}


def per_class_figure(accuracies: dict[str, float], counts: list[int] | None, epoch: int) -> Figure:
    """One horizontal bar per class: its validation accuracy, its training images named
    beside its name; a class absent from the val set gets no bar."""
    names = list(accuracies)
    labels = [f"{n} ({c:,})" for n, c in zip(names, counts, strict=True)] if counts else names
    figure = Figure(figsize=(5.0, 0.5 + 0.22 * len(names)), dpi=100, layout="constrained")
    ax = figure.subplots()
    values = [0.0 if v != v else v for v in accuracies.values()]  # NaN: no bar
    ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)), labels, fontsize=8)
    ax.invert_yaxis()  # the first class on top
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("validation accuracy (recall)", fontsize=9)
    train = " (training images)" if counts else ""
    ax.set_title(f"per-class accuracy{train}, epoch {epoch}", fontsize=10)
    return figure
