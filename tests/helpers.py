"""Helpers of the fault tests: console-script runs, a kill -9 at a checkpoint, deep equality."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

CLI = str(Path(sys.executable).parent / "inception-lightning")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def fit_in(folder: Path, *args: str) -> None:
    """`inception-lightning fit -c run.yaml ARGS` in `folder`; it must succeed."""
    proc = subprocess.run(
        [CLI, "fit", "-c", "run.yaml", *args],
        cwd=folder,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def kill_when_written(folder: Path, path: Path, timeout: float = 120) -> None:
    """Start `fit -c run.yaml` in `folder` and kill -9 it as soon as `path` exists."""
    run = subprocess.Popen(
        [CLI, "fit", "-c", "run.yaml"],
        cwd=folder,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while not path.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    assert run.wait(timeout=30) == -signal.SIGKILL


def logged_metrics(folder: Path, version: int) -> list[dict[str, str]]:
    """The rows of `folder/logs/run/version_N/metrics.csv` (a CSVLogger's), empty cells left out."""
    with open(folder / "logs" / "run" / f"version_{version}" / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]


def assert_same(a: Any, b: Any, where: str = "checkpoint") -> None:
    """Recursive equality; tensors with `torch.equal`."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where
