"""The learning-rate range test from YAML: Lightning's LearningRateFinder before training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from inception_lightning.cli import main

CONF = Path(__file__).resolve().parents[1] / "conf"
# The test's steps come from the epoch: 72 samples, 7 for val, 16 batches of 4 for training.
SHRUNK = [
    "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--cpu_recipe", "null", "--data.init_args.num_samples", "72",
    "--data.init_args.loader.batch_size", "4", "--model.model_kwargs.width", "0.0625",
]  # fmt: skip


@pytest.mark.e2e
def test_range_test_sets_the_suggested_lr_keeping_the_backbones_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", "-c", str(CONF / "quickstart.yaml"), "--trainer.callbacks", "[]",
          "-c", str(CONF / "callbacks" / "lr_range_test.yaml"), *SHRUNK,
          "--trainer.callbacks.init_args.num_training_steps", "16",
          "--model.optim.backbone_lr_scale", "0.5"])  # fmt: skip
    run = tmp_path / "runs" / "quickstart" / "version_0"
    results = json.loads((run / "lr_range_test.json").read_text())
    lrs, losses = results["lr"], results["loss"]
    assert len(lrs) == 16 and lrs[0] == 1e-6 and lrs == sorted(lrs) and lrs[-1] <= 1.0
    # Lightning's suggestion: the steepest fall of the smoothed loss, past the first 10 points
    steepest = int(np.gradient(np.array(losses[10:-1])).argmin()) + 10
    assert results["suggestion"] == lrs[steepest]
    assert results["configured"] == 0.002  # the quickstart's AdamW lr
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    logged = {tag: events.Scalars(tag)[0].value for tag in ("train/lr/head", "train/lr/backbone")}
    assert logged["train/lr/head"] == pytest.approx(results["suggestion"], rel=1e-6)
    assert logged["train/lr/backbone"] == pytest.approx(0.5 * results["suggestion"], rel=1e-6)
    assert "train/lr_range_test" in events.Tags()["images"]
