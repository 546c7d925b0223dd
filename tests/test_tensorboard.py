"""What TensorBoard shows: the hparams and custom-scalars tabs, small sections after the loss and
accuracy, and the report beside its run; read back from the event files.

`quickstart_run` (conftest) is the shipped quickstart through the console script, shrunk: 2
epochs of 13 steps of 8 images (its callbacks observe step 24), then its end-of-fit report.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from lightning.pytorch import Trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from inception_lightning.callbacks import BranchActivationStats, DyingResidualDetector
from inception_lightning.data import LoaderOptions, SyntheticDataModule
from inception_lightning.training import (
    ExclusiveTensorBoardLogger,
    InceptionClassifier,
)

pytestmark = pytest.mark.e2e  # console-script runs, subprocesses or whole scripts

CHART_LIMIT = 60
EVERYTHING = {"scalars": 0, "images": 0, "histograms": 0, "tensors": 0}


def read(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run), size_guidance=EVERYTHING)
    events.Reload()
    return events


def sections(events: EventAccumulator) -> Counter[str]:
    """Cards per Time Series section: TensorBoard groups by a tag's first path component."""
    tags = events.Tags()
    cards = [t for kind in ("scalars", "images", "histograms") for t in tags[kind]]
    cards += [t for t in tags["tensors"] if t.endswith("/text_summary")]
    return Counter(tag.split("/", 1)[0] for tag in cards)


def test_no_section_exceeds_the_chart_limit_for_inception_resnet_v2(tmp_path: Path) -> None:
    module = InceptionClassifier(
        "inception_resnet_v2",
        num_classes=3,
        model_kwargs={"width": 0.0625, "stem": 79, "aux_head": False},
    )
    data = SyntheticDataModule(
        num_classes=3, image_size=79, num_samples=8, loader=LoaderOptions(batch_size=4)
    )
    callbacks = [
        BranchActivationStats(every_n_steps=1, histogram_every_n_steps=1),
        DyingResidualDetector(every_n_steps=1),
    ]
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=1, limit_val_batches=0,
        log_every_n_steps=1, logger=ExclusiveTensorBoardLogger(tmp_path, name="irv2"),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=callbacks,
    )  # fmt: skip
    trainer.fit(module, data)

    counts = sections(read(Path(trainer.log_dir)))
    # every one of IR-v2's 101 branches (5 statistics and a histogram) and 40 residual blocks
    branch = sum(n for s, n in counts.items() if s.startswith("watch.branch."))
    assert branch == 101 * 6
    assert sum(n for s, n in counts.items() if s.startswith("watch.residual.")) == 40 * 7
    assert max(counts.values()) <= CHART_LIMIT, counts.most_common(3)
    assert counts["watch.branch.energy_share.17x17"] == 43  # the largest: the 17x17 grid
    assert counts["watch.branch"] == 1  # the heat map, first of the branch sections
    assert sorted(counts)[sorted(counts).index("train") :][:2] == ["train", "watch.branch"]


def test_hparams_tab_holds_the_runs_settings_and_best_accuracies(quickstart_run: Path) -> None:
    events = read(quickstart_run)
    plugin = {
        tag: plugin_data_pb2.HParamsPluginData.FromString(raw)
        for tag, raw in events.PluginTagToContent("hparams").items()
    }
    experiment = plugin["_hparams_/experiment"].experiment
    metrics = [m.name.tag for m in experiment.metric_infos]
    assert metrics == ["val/acc1_best", "val_ema/acc1_best"]  # no hp_metric
    start = plugin["_hparams_/session_start_info"].session_start_info.hparams
    values = {k: v.string_value or v.number_value for k, v in start.items()}
    assert {k: values[k] for k in ("model", "optimizer", "scheduler", "data")} == {
        "model": "inception_resnet_v1",
        "optimizer": "AdamW",
        "scheduler": "CosineAnnealingLR",
        "data": "SyntheticDataModule",
    }
    assert (values["width"], values["lr"], values["batch_size"]) == (0.125, 0.002, 8)
    assert not any(k.startswith("_") for k in values)  # no _instantiator
    assert "hp_metric" not in events.Tags()["scalars"]
    for name in ("val/acc1", "val_ema/acc1"):  # the tab reads each metric's last value
        best = events.Scalars(f"{name}_best")[-1].value
        assert best == pytest.approx(max(e.value for e in events.Scalars(name)))


def test_custom_scalars_lay_val_beside_val_ema_and_train_beside_val(quickstart_run: Path) -> None:
    events = read(quickstart_run)
    (layout_event,) = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(layout_event.tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts == {
        "acc1: val and val_ema": ["^val/acc1$", "^val_ema/acc1$"],
        "loss: val and val_ema": ["^val/loss$", "^val_ema/loss$"],
        "loss: train and val": ["^train/loss$", "^val/loss$"],
    }
    scalars = set(events.Tags()["scalars"])
    assert {"val/acc1", "val_ema/acc1", "val/loss", "val_ema/loss", "train/loss"} <= scalars


def test_loss_and_accuracy_come_before_the_diagnostics(quickstart_run: Path) -> None:
    counts = sections(read(quickstart_run))
    order = sorted(counts)  # TensorBoard's order for these names
    watch = [s for s in order if s.startswith("watch.")]
    assert order.index("val_ema") < order.index(watch[0]) and watch[0] == "watch.branch"
    assert {"train", "val", "val_ema", "gradcam"} <= set(counts)
    assert set(order) - set(watch) <= {"epoch", "gradcam", "train", "val", "val_ema"}
    assert max(counts.values()) <= CHART_LIMIT


def test_quickstart_logs_lr_grad_cam_per_stage_and_writes_its_report_beside_the_run(
    quickstart_run: Path,
) -> None:
    tags = read(quickstart_run).Tags()
    assert {"train/lr/backbone", "train/lr/head"} <= set(tags["scalars"])
    assert "gradcam/val/insertion_auc" in tags["scalars"]
    overlays = [t.split("/") for t in tags["images"] if t.startswith("gradcam/val/overlays/")]
    assert len({parts[3] for parts in overlays}) == 8  # pictures of every class
    report = quickstart_run / "report"
    assert (report / "index.html").is_file() and (report / "summary.json").is_file()
    assert (quickstart_run / "checkpoints" / "last.ckpt").is_file()
