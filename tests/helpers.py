"""Helpers the tests import (`from helpers import ...`); `conftest.py` holds the fixtures.

Tiny networks and data (random loaders, image files and folders, a hand-checkable network),
the console script run as a subprocess where the process boundary is the point (a kill -9 at a
checkpoint), the resumed and the uninterrupted runs in this process, deep equality of what they
saved.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from inception_lightning.cli import main
from inception_lightning.data import LoaderOptions
from inception_lightning.data.datamodule import ImageDataModule
from inception_lightning.data.transforms.preprocessing import Preprocessing

# A CPU-sized Inception-v3: 75 px inputs, no aux head.
TINY = {"width": 0.0625, "stem": 299, "aux_head": False}

CLI = str(Path(sys.executable).parent / "inception-lightning")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

# Trainer and model of the kill -9 resume tests (add `data:`): 2 epochs, a checkpoint every 2
# steps, EMA, and dropout, whose masks must replay too.
KILLED_RUN_HEAD = """
seed_everything: 0
trainer:
  accelerator: cpu  # or gpu: see tests/test_faults.py
  max_epochs: 2
  deterministic: true
  log_every_n_steps: 1
  enable_model_summary: false
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {save_dir: logs, name: run}
  callbacks+:
    - class_path: inception_lightning.callbacks.ema.InceptionEMA
      init_args: {decay: 0.9}
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {dirpath: ckpt, every_n_train_steps: 2, save_last: true, save_top_k: 0}
model:
  model: inception_v3
  model_kwargs: {width: 0.0625, aux_head: false, drop_rate: 0.2}  # dropout: its masks replay
  optimizer:
    class_path: torch.optim.AdamW
    init_args: {lr: 0.001}
"""


def random_loader(
    n: int = 8, size: int = 75, batch_size: int = 4, classes: int = 4, seed: int = 0
) -> DataLoader:
    """Seeded normal-noise images (already model input) with labels cycling through classes."""
    images = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return DataLoader(TensorDataset(images, torch.arange(n) % classes), batch_size=batch_size)


class DatasetsModule(ImageDataModule):
    """Given datasets (uint8 items, `LabelledImages`) behind the package's normalisation path."""

    def __init__(
        self, train: Any, val: Any | None = None, test: Any | None = None, batch_size: int = 6
    ) -> None:
        size = train[0][0].shape[-1]
        preprocessing = Preprocessing(size, crop_pct=1.0)
        super().__init__(list(train.classes), preprocessing, LoaderOptions(batch_size, 0, False))
        self.train_dataset, self.val_dataset, self.test_dataset = train, val or train, test

    def setup(self, stage: str | None = None) -> None:
        """The datasets exist already."""


def write_image(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    """A random RGB image file (format from the suffix) of `size` `(width, height)`."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write_tree(
    root: Path,
    classes: Sequence[str] = ("cat", "dog"),
    splits: Sequence[str] = ("train", "val"),
    n: int = 3,
    suffix: str = ".png",
    size: tuple[int, int] = (40, 30),
) -> Path:
    """`root/<split>/<class>/<i><suffix>`: n random images per class and split."""
    for split in splits:
        for c, name in enumerate(classes):
            for i in range(n):
                write_image(root / split / name / f"{i}{suffix}", size, seed=100 * c + i)
    return root


def age(where: Path, seconds: float = 3600) -> Path:
    """Date the file `where`, or every file under it, `seconds` back.

    The scan cache keeps no result of a file modified in the 2 s before the scan
    (`data.scan_cache.RACY_NS`); tests that expect cached results date their files back.
    """
    past = time.time() - seconds
    for path in [where] if where.is_file() else where.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))
    return where


class TwoChannelNet(nn.Module):
    """conv 2x2/2 (channel 0 sums a block, channel 1 negates it) -> mean -> linear: the class-1
    Grad-CAM map is -sum / 4 everywhere, so its ReLU is empty."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=2, stride=2, bias=False)
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.stack([torch.ones(1, 2, 2), -torch.ones(1, 2, 2)]))
            self.fc.weight.copy_(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def run_two_ranks(script_text: str, folder: Path) -> dict:
    """Run `script_text` in `folder` (a 2-process DDP script, which relaunches itself for rank 1)
    with the arguments `result.json runs`, and read the JSON result rank 0 wrote there."""
    script, out = folder / "ddp_run.py", folder / "result.json"
    script.write_text(script_text)
    proc = subprocess.run(
        [sys.executable, str(script), str(out), str(folder / "runs")],
        cwd=folder,
        env={**ENV, "PL_DISABLE_FORK": "1"},
        capture_output=True,
        text=True,
        timeout=300,  # a deadlocked rank would hang here: the timeout turns it into a failure
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def fit_in(folder: Path, *args: str) -> None:
    """`inception-lightning fit -c run.yaml ARGS` in `folder`, in this process (`cli.main`).

    On one thread, as `kill_when_written`'s process runs (`ENV`): a run compared bit for bit
    with a killed one must sum in the same order.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.chdir(folder):
            main(["fit", "-c", "run.yaml", *args])
    finally:
        torch.set_num_threads(threads)


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
