"""A 2-process CPU DDP run (gloo) with EMA and the diagnostics callbacks completes, rank 0
logging the diagnostics; one run, read by both tests.

`strategy="ddp"` relaunches the running script for the second rank, so the run lives in a small
script started as a subprocess rather than inside pytest's process. torch's SyncBatchNorm runs
only on CUDA under DDP, so `sync_batchnorm=True` is left to GPU runs.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers import run_two_ranks
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.e2e  # console-script runs, subprocesses or whole scripts

# One run for both tests: EMA, and the diagnostics callbacks logging from rank 0.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import TensorBoardLogger
    from inception_lightning.callbacks import BranchActivationStats, DyingResidualDetector, GradCam
    from inception_lightning.callbacks.ema import InceptionEMA
    from inception_lightning.data import LoaderOptions, SyntheticDataModule
    from inception_lightning.explain import ReportOptions, SampleOptions, ScoreOptions
    from inception_lightning.training.module import InceptionClassifier

    data = SyntheticDataModule(
        num_classes=4, image_size=75, num_samples=48, loader=LoaderOptions(batch_size=4)
    )
    module = InceptionClassifier(
        model="inception_resnet_v1", num_classes=4,
        model_kwargs={"width": 0.0625, "stem": 299, "aux_head": False},
    )
    ema = InceptionEMA()
    callbacks = [
        ema,
        BranchActivationStats(every_n_steps=1),
        DyingResidualDetector(every_n_steps=1),
        GradCam(
            sample=SampleOptions(per_class=1, max_samples=4, max_misclassified=2),
            scores=ScoreOptions(steps=2), report=ReportOptions(enabled=False),
        ),
    ]
    trainer = Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=2, limit_val_batches=1,
        num_sanity_val_steps=0, logger=TensorBoardLogger(sys.argv[2], name="ddp", version=0),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=callbacks, val_check_interval=2,
    )
    trainer.fit(module, data)
    if trainer.global_rank == 0:
        result = {
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "metrics": sorted(trainer.callback_metrics),
            "ema_updates": ema._average_model.num_updates,
        }
        with open(sys.argv[1], "w") as f:
            json.dump(result, f)
    """
)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """`SCRIPT` run once: rank 0's JSON result and the run's folder."""
    folder = tmp_path_factory.mktemp("ddp")
    return run_two_ranks(SCRIPT, folder), folder


def test_two_process_cpu_ddp_run_completes(ddp_run: tuple[dict, Path]) -> None:
    result, _ = ddp_run
    assert result["world_size"] == 2
    assert result["global_step"] == 2
    assert result["ema_updates"] == 2
    assert {"train/loss", "val/acc1", "val_ema/acc1"} <= set(result["metrics"])


def test_diagnostics_callbacks_under_ddp_log_from_rank_zero_without_deadlock(
    ddp_run: tuple[dict, Path],
) -> None:
    result, folder = ddp_run
    assert result["global_step"] == 2
    events = EventAccumulator(str(folder / "runs" / "ddp" / "version_0"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert "watch.dying/pre_pool_dead_fraction" in tags
    assert "watch.branch.mean.35x35/block35_1/b1x1" in tags
    assert "gradcam/val/deletion_auc" in tags  # Grad-CAM ran on rank 0 and the job still finished
