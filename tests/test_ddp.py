"""A 2-process CPU DDP run (gloo) with EMA completes.

`strategy="ddp"` relaunches the running script for the second rank, so the run lives in a small
script started as a subprocess rather than inside pytest's process. torch's SyncBatchNorm runs
only on CUDA under DDP, so `sync_batchnorm=True` is left to GPU runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader, TensorDataset
    from inception_lightning.ema import InceptionEMA
    from inception_lightning.module import InceptionClassifier

    torch.manual_seed(0)
    images, labels = torch.randn(16, 3, 75, 75), torch.arange(16) % 4
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    module = InceptionClassifier(
        num_classes=4, model_kwargs={"width": 0.0625, "stem": "299", "aux_head": False}
    )
    ema = InceptionEMA()
    trainer = Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=2,
        limit_val_batches=1, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[ema],
    )
    trainer.fit(module, loader, loader)
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


def test_two_process_cpu_ddp_run_completes(tmp_path) -> None:
    script, out = tmp_path / "ddp_run.py", tmp_path / "result.json"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}

    proc = subprocess.run(
        [sys.executable, str(script), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world_size"] == 2
    assert result["global_step"] == 2
    assert result["ema_updates"] == 2
    assert {"train/loss", "val/acc1", "val_ema/acc1"} <= set(result["metrics"])
