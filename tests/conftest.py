"""Shared test fixtures: tiny classifiers, quiet CPU trainers, random loaders and image folders."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from PIL import Image
from rich.console import Console
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from inception_lightning import console
from inception_lightning.data import LoaderOptions
from inception_lightning.data.datamodule import ImageDataModule
from inception_lightning.data.transforms.preprocessing import Preprocessing
from inception_lightning.training import InceptionClassifier

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several workers share the cores (pyproject's addopts): one thread each, for the tests'
    # own networks and for the console scripts they start, since OpenMP threads of processes
    # that share cores stall at every barrier.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# A CPU-sized Inception-v3: 75 px inputs, no aux head.
TINY = {"width": 0.0625, "stem": 299, "aux_head": False}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def classifier() -> Callable[..., InceptionClassifier]:
    """`classifier(model="inception_v3", num_classes=4, sgd=None, **kwargs)`: a seeded module.

    The network is `TINY` unless `model_kwargs` says otherwise; `sgd=lr` swaps the paper's
    RMSProp for plain SGD at that learning rate.
    """

    def make(
        model: str = "inception_v3",
        num_classes: int = 4,
        sgd: float | None = None,
        **kwargs: Any,
    ) -> InceptionClassifier:
        torch.manual_seed(0)
        kwargs.setdefault("model_kwargs", TINY)
        if sgd is not None:
            kwargs["optimizer"] = partial(torch.optim.SGD, lr=sgd)
        return InceptionClassifier(model, num_classes=num_classes, **kwargs)

    return make


@pytest.fixture
def trainer(tmp_path: Path) -> Callable[..., Trainer]:
    """`trainer(**kwargs)`: a CPU Trainer; no logger, checkpoints, bar or summary by default."""

    def make(**kwargs: Any) -> Trainer:
        kwargs.setdefault("accelerator", "cpu")
        kwargs.setdefault("logger", False)
        kwargs.setdefault("enable_checkpointing", False)
        kwargs.setdefault("default_root_dir", tmp_path)
        return Trainer(enable_progress_bar=False, enable_model_summary=False, **kwargs)

    return make


def random_loader(
    n: int = 8, size: int = 75, batch_size: int = 4, classes: int = 4, seed: int = 0
) -> DataLoader:
    """Seeded normal-noise images (already model input) with labels cycling through classes."""
    images = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return DataLoader(TensorDataset(images, torch.arange(n) % classes), batch_size=batch_size)


@pytest.fixture
def loader() -> Callable[..., DataLoader]:
    """`loader(n=8, size=75, batch_size=4, classes=4, seed=0)`: see `random_loader`."""
    return random_loader


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


@pytest.fixture
def datamodule() -> Callable[..., DatasetsModule]:
    """`datamodule(train, val=None, test=None, batch_size=6)`: see `DatasetsModule`."""
    return DatasetsModule


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


@pytest.fixture
def image_tree(tmp_path: Path) -> Callable[..., Path]:
    """`image_tree(root=tmp_path / "data", classes=..., splits=..., n=3, suffix=".png")`."""

    def make(root: Path | None = None, **kwargs: Any) -> Path:
        return write_tree(root or tmp_path / "data", **kwargs)

    return make


@pytest.fixture
def terminal_progress(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Progress bars shown as on a terminal (unless switched off), written to this buffer."""
    shown = io.StringIO()

    class Captured(console.Progress):
        def __init__(self, *columns: object, **kwargs: object) -> None:
            target = Console(file=shown, force_terminal=True, width=120)
            super().__init__(*columns, console=target, **kwargs)

    monkeypatch.setattr(console, "Progress", Captured)
    monkeypatch.setattr(console, "progress_enabled", lambda enabled=None: enabled is not False)
    return shown


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
