"""Shared test fixtures: tiny classifiers, quiet CPU trainers, random loaders and image folders.

Fixtures only: the functions and classes tests import live in `helpers.py`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import TINY, DatasetsModule, random_loader, write_tree
from lightning.pytorch import Trainer
from rich.console import Console
from torch.utils.data import DataLoader

from inception_lightning import console
from inception_lightning.training import InceptionClassifier

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several workers share the cores (pyproject's addopts): one thread each, for the tests'
    # own networks and for the console scripts they start, since OpenMP threads of processes
    # that share cores stall at every barrier.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


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


@pytest.fixture
def loader() -> Callable[..., DataLoader]:
    """`loader(n=8, size=75, batch_size=4, classes=4, seed=0)`: see `random_loader`."""
    return random_loader


@pytest.fixture
def datamodule() -> Callable[..., DatasetsModule]:
    """`datamodule(train, val=None, test=None, batch_size=6)`: see `DatasetsModule`."""
    return DatasetsModule


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
