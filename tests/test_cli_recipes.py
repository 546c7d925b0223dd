"""The shipped recipes through the console script: 2-process DDP, and no logger at all (in
this process: `cli.main`).

Each DDP run is a real `inception-lightning fit -c conf/...` job on 2 gloo processes of the CPU,
with the recipe's optimiser built by jsonargparse from its YAML (the part a deep copy of the
module could not pickle), EMA and the diagnostics callbacks, made small by overrides. A callback
from a module the test writes (`ranks.RecordRanks`) reports what each rank saw.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inception_lightning import create_model
from inception_lightning.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
CLI = str(Path(sys.executable).parent / "inception-lightning")
RANKS = textwrap.dedent(
    """
    import json
    from pathlib import Path

    import torch
    from lightning.pytorch.callbacks import Callback

    from inception_lightning.callbacks import InceptionEMA


    def checksum(network):
        return sum(float(p.double().abs().sum()) for p in network.parameters())


    class RecordRanks(Callback):
        def __init__(self, out: str) -> None:
            self.out = Path(out)

        def on_fit_start(self, trainer, pl_module):
            self.initial = checksum(pl_module.model)

        def on_train_end(self, trainer, pl_module):
            ema = next(cb for cb in trainer.callbacks if isinstance(cb, InceptionEMA))
            average = ema.average_network()
            record = {
                "world_size": trainer.world_size,
                "global_step": trainer.global_step,
                "ema_updates": ema._average_model.num_updates,
                "initial": self.initial,
                "average": checksum(average),
                "callbacks": sorted(type(cb).__name__ for cb in trainer.callbacks),
                "optimizer": type(trainer.optimizers[0]).__name__,
            }
            self.out.mkdir(exist_ok=True)
            path = self.out / f"rank{trainer.global_rank}.json"
            path.write_text(json.dumps(record))
    """
)


def _fit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`inception-lightning fit ARGS` in `tmp_path`, with `ranks.RecordRanks` importable."""
    (tmp_path / "ranks.py").write_text(RANKS)
    record = tmp_path / "record.yaml"
    record.write_text(
        "trainer:\n  callbacks+:\n    - class_path: ranks.RecordRanks\n"
        f"      init_args: {{out: {tmp_path / 'ranks'}}}\n"
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PL_DISABLE_FORK": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [CLI, "fit", *args, "-c", str(record), "--trainer.enable_progress_bar", "false"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,  # a deadlocked rank would hang here: the timeout turns it into a failure
    )


def _ranks(tmp_path: Path) -> list[dict]:
    return [json.loads((tmp_path / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]


def _assert_ema_updated_alike_on_both_ranks(ranks: list[dict], steps: int) -> None:
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["global_step"] == steps
        assert rank["ema_updates"] == steps  # one update per optimiser step, on each rank
        assert rank["average"] != pytest.approx(rank["initial"], rel=1e-9, abs=0)
    # DDP keeps the replicas' parameters equal, so each rank's average of them is the same (not
    # the BN statistics: each rank's come from its own batches).
    assert ranks[0]["average"] == pytest.approx(ranks[1]["average"], rel=1e-9)


@pytest.mark.e2e
def test_quickstart_runs_as_a_two_process_ddp_job(tmp_path: Path) -> None:
    proc = _fit(
        tmp_path,
        "-c", str(CONF / "quickstart.yaml"),
        "--trainer.strategy", "ddp", "--trainer.devices", "2",
        "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1",
        "--model.model_kwargs", '{"width": 0.0625, "stem": 79}',
        "--data.init_args.num_samples", "60", "--data.init_args.loader.batch_size", "4",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = _ranks(tmp_path)
    _assert_ema_updated_alike_on_both_ranks(ranks, steps=3)
    assert ranks[0]["optimizer"] == "AdamW"  # from the recipe's YAML
    diagnostics = {"BranchActivationStats", "DyingResidualDetector", "GradCam", "InceptionEMA"}
    assert diagnostics <= set(ranks[1]["callbacks"])


@pytest.fixture
def tiny_v3_state_dict(tmp_path: Path) -> Path:
    """A local state dict of a tiny Inception-v3 (random weights; timm's layout is mapped in
    `tests/test_weights.py`, on full-size networks)."""
    path = tmp_path / "tiny_inception_v3.pth"
    torch.save(create_model("inception_v3", 1000, width=0.0625, aux_head=False).state_dict(), path)
    return path


def _jpeg_tree(root: Path, per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            for i in range(per_class):
                path = root / split / name / f"{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(path)
    return root


@pytest.mark.e2e
def test_finetuning_recipe_runs_as_a_two_process_ddp_job(
    tmp_path: Path, tiny_v3_state_dict: Path
) -> None:
    data = _jpeg_tree(tmp_path / "data")
    recipe = ["fit.yaml", "model/inception_v3.yaml", "finetune.yaml", "trainer/ddp.yaml",
              "callbacks/diagnostics.yaml"]  # fmt: skip
    proc = _fit(
        tmp_path,
        *(arg for name in recipe for arg in ("-c", str(CONF / name))),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.sync_batchnorm", "false",  # torch runs SyncBatchNorm on GPUs only
        "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
        "--model.init.pretrained", "false", "--model.init.checkpoint_path", str(tiny_v3_state_dict),
        "--model.model_kwargs", '{"width": 0.0625, "aux_head": false}',  # aux: 299 px inputs
        "--data.init_args.root", str(data), "--data.init_args.crop.image_size", "75",
        "--data.init_args.loader.batch_size", "2", "--data.init_args.loader.num_workers", "0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = _ranks(tmp_path)
    _assert_ema_updated_alike_on_both_ranks(ranks, steps=2)
    assert ranks[0]["optimizer"] == "AdamW"
    assert {"FineTuning", "BranchActivationStats", "GradCam"} <= set(ranks[1]["callbacks"])


@pytest.mark.e2e
def test_fit_without_a_logger_warns_once_per_callback_and_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # the default_root_dir
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")  # every warning, repeats too
        main([
            "fit", "-c", str(CONF / "quickstart.yaml"), "--trainer.logger", "false",
            "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
            "--model.model_kwargs", '{"width": 0.0625, "stem": 79}',
            "--data.init_args.num_samples", "40", "--data.init_args.loader.batch_size", "8",
        ])  # fmt: skip
    said = [str(w.message) for w in caught] + caplog.messages  # what stderr would show
    for name in ("BranchActivationStats", "DyingResidualDetector", "GradCam"):
        assert sum(m.startswith(f"{name}: the trainer has no logger") for m in said) == 1, name
    assert not any("LearningRateMonitor" in m for m in said)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # the default_root_dir's folder
    assert not (tmp_path / "runs" / "quickstart" / "version_0").exists()
