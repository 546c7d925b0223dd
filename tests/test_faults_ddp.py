"""A rank that raises under 2-process CPU DDP ends the whole job with its error, never a hang.

Rank 1 raises in `training_step` at step 2 while rank 0 goes on to the gradient all-reduce of
that step. The job must exit non-zero, with rank 1's message in its output, within
`AFTER_FAILURE_S` of the failure. Were rank 0 left waiting in its all-reduce, the process
group's timeout (`PG_TIMEOUT_S`, longer than that bound and shorter than the subprocess timeout)
would end the job late, and the bound, not the timeout, would fail: it can.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # console-script runs, subprocesses or whole scripts

AFTER_FAILURE_S = 60  # the job ends in about 15 s on 2 cores; a hang lasts PG_TIMEOUT_S
PG_TIMEOUT_S = 120
TIMEOUT_S = 400
SCRIPT = textwrap.dedent(
    """
    import time
    from datetime import timedelta
    from lightning.pytorch import Trainer
    from lightning.pytorch.strategies import DDPStrategy
    from inception_lightning.data import LoaderOptions, SyntheticDataModule
    from inception_lightning.training.module import InceptionClassifier

    class FailingOnRank1(InceptionClassifier):
        def training_step(self, batch, batch_idx):
            if self.global_rank == 1 and self.global_step == 2:
                with open("failed_at", "w") as f:
                    f.write(repr(time.time()))
                raise RuntimeError("rank 1 failed on purpose at step 2")
            return super().training_step(batch, batch_idx)

    data = SyntheticDataModule(
        num_classes=4, image_size=75, num_samples=80, loader=LoaderOptions(batch_size=4)
    )
    module = FailingOnRank1(
        num_classes=4, model_kwargs={"width": 0.0625, "stem": 299, "aux_head": False}
    )
    trainer = Trainer(
        accelerator="cpu", devices=2, max_steps=6, limit_val_batches=0,
        strategy=DDPStrategy(timeout=timedelta(seconds=PG_TIMEOUT_S)),
        num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(module, data)
    """
).replace("PG_TIMEOUT_S", str(PG_TIMEOUT_S))


def test_failing_rank_ends_the_job_with_its_error(tmp_path: Path) -> None:
    script = tmp_path / "ddp_fail.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,  # a hang fails the test here instead of blocking the suite
    )
    ended = time.time()
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "rank 1 failed on purpose at step 2" in output, output[-3000:]
    after_failure = ended - float((tmp_path / "failed_at").read_text())
    assert after_failure < AFTER_FAILURE_S, (
        f"the job ended {after_failure:.0f} s after rank 1 failed"
    )
