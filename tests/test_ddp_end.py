"""The end of a 2-process DDP fit through the console script: rank 0's report, made slower
than the process group's timeout, still ends the job cleanly, every rank waiting for it.

The run starts `python slow_report.py fit ...`: the console script's `main`, with GradCam's
`on_fit_end` made to set the group's collective timeout to `PG_TIMEOUT_S` on every rank (where
it would bound any barrier the ranks waited in) and `build_report` made to sleep `REPORT_S`,
longer than that, on rank 0. Lightning starts rank 1 by running the same script again. Each
rank records when it left `on_fit_end`, and, at exit after the package's own handler, whether
the process group was still up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PG_TIMEOUT_S = 4
REPORT_S = 8  # > PG_TIMEOUT_S: a rank waiting in a collective would time out
SLOW_REPORT = textwrap.dedent(
    f"""
    import atexit, os, time
    from datetime import timedelta

    import torch.distributed as dist

    import inception_lightning.callbacks.grad_cam as grad_cam
    from inception_lightning.cli import main

    rank = os.environ.get("LOCAL_RANK", "0")
    log = open(os.environ["END_LOG"], "a", buffering=1)
    real_end, real_build = grad_cam.GradCam.on_fit_end, grad_cam.build_report


    def on_fit_end(self, trainer, pl_module):
        dist.set_timeout(timedelta(seconds={PG_TIMEOUT_S}))
        real_end(self, trainer, pl_module)
        log.write(f"{{rank}} left on_fit_end {{time.time()}}\\n")


    def build_report(*args, **kwargs):
        time.sleep({REPORT_S})
        index = real_build(*args, **kwargs)
        log.write(f"{{rank}} wrote the report {{time.time()}}\\n")
        return index


    grad_cam.GradCam.on_fit_end, grad_cam.build_report = on_fit_end, build_report
    # registered first, so it runs last: after the package's release of the group
    atexit.register(lambda: log.write(f"{{rank}} group up at exit {{dist.is_initialized()}}\\n"))
    main()
    """
)
FIT = textwrap.dedent(
    """
    trainer:
      accelerator: cpu
      strategy: ddp
      devices: 2
      max_steps: 1
      limit_val_batches: 1
      num_sanity_val_steps: 0
      enable_progress_bar: false
      enable_model_summary: false
      enable_checkpointing: false
      callbacks:
        - class_path: inception_lightning.callbacks.GradCam
          init_args:
            every_n_epochs: 2  # the report alone: no explanations during the 1-step run
            sample: {per_class: 1, max_samples: 2, max_misclassified: 0}
            scores: {steps: 2}
            sanity: {samples: 0}
            report: {per_class: 1}
    model:
      model_kwargs: {width: 0.0625, stem: 79}
    data:
      class_path: inception_lightning.data.SyntheticDataModule
      init_args:
        image_size: 79
        num_samples: 16
        loader: {batch_size: 4}
    """
)


@pytest.mark.e2e
def test_a_report_slower_than_the_group_timeout_ends_every_rank_cleanly(tmp_path: Path) -> None:
    script, config, log = tmp_path / "slow_report.py", tmp_path / "fit.yaml", tmp_path / "end.log"
    script.write_text(SLOW_REPORT)
    config.write_text(FIT)
    proc = subprocess.run(
        [sys.executable, str(script), "fit", "-c", str(config)],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1", "END_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=300,  # a rank left waiting would hang here: the timeout turns it into a failure
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "runs" / "inception" / "version_0" / "report" / "index.html").is_file()
    events = dict(line.rsplit(" ", 1) for line in log.read_text().splitlines())
    assert "1 wrote the report" not in events  # rank 0 alone wrote it...
    written = float(events["0 wrote the report"])
    assert float(events["1 left on_fit_end"]) >= written  # ...while rank 1 waited for it
    assert float(events["0 left on_fit_end"]) >= written
    # and each process released the group before its interpreter shut down
    assert events["0 group up at exit"] == events["1 group up at exit"] == "False"
    assert "terminate called" not in proc.stderr
