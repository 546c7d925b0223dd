"""Shared test fixtures: tiny classifiers, quiet CPU trainers, random loaders and image folders.

Fixtures only: the functions and classes tests import live in `helpers.py`.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import shutil
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from filelock import FileLock
from helpers import TINY, DatasetsModule, random_loader, write_tree
from lightning.pytorch import Trainer
from rich.console import Console
from torch.utils.data import DataLoader

from inception_lightning import console
from inception_lightning.cli import main
from inception_lightning.training import InceptionClassifier

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several workers share the cores (pyproject's addopts): one thread each, for the tests'
    # own networks and for the console scripts they start, since OpenMP threads of processes
    # that share cores stall at every barrier.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

CONF = Path(__file__).resolve().parents[1] / "conf"

# The imports above (torch, Lightning, timm, ...) leave about a million objects that live as long
# as the worker: frozen, the garbage collector's full passes skip them (0.4 s each, before).
gc.freeze()


# Files of one long test each (a minute of training; a 2-node job and its predict): counted by
# end-to-end tests, they went out late, and a worker ended on them while the other was idle.
LONGEST = ("test_gradcam_learning.py", "test_multinode.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`LONGEST` first, then files by their count of end-to-end tests, most first (stable
    otherwise).

    pytest-xdist's `--dist loadfile` hands out files in this order (pyproject's addopts turn off
    its own reordering, by test count, which put the one-test files of the longest runs last):
    long files first, short ones last, so that the workers end together.
    """
    e2e = Counter(item.path.name for item in items if item.get_closest_marker("e2e"))
    items.sort(key=lambda item: (item.path.name not in LONGEST, -e2e[item.path.name]))


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


# The shipped quickstart, shrunk: 2 epochs of 13 steps of 8 images (its callbacks, every 25 steps,
# observe step 24), so that the schedule, the best checkpoint and the hparams tab's best
# accuracies see more than one epoch; then its end-of-fit report. GradCam keeps its sample (its
# tags: one overlay per image) but explains it at the last epoch only, with 4-step curves, and its
# report shows one image per class: its attributions were 2/3 of the run's time.
QUICKSTART_RUN = [
    "fit", "-c", str(CONF / "quickstart.yaml"),
    "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "13",
    "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false",
    "--data.init_args.num_samples", "240", "--data.init_args.loader.batch_size", "8",
    "--trainer.callbacks.every_n_epochs", "2", "--trainer.callbacks.scores.steps", "4",
    "--trainer.callbacks.report.per_class", "1",
]  # fmt: skip


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The run folder (`runs/quickstart/version_0`) of `QUICKSTART_RUN` through the console
    script (in this process): TensorBoard files, `checkpoints/` and GradCam's `report/`.

    Built once per test run: pytest-xdist's workers share it through a file lock in their
    common temporary folder. Tests read it and write nothing there.
    """
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # each worker has its own base folder, in the run's
        shared = shared.parent
    folder = shared / "quickstart"
    with FileLock(shared / "quickstart.lock"):
        if not (folder / "done").exists():  # first, or after a worker's build failed
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            with contextlib.chdir(folder):
                main(QUICKSTART_RUN)
            (folder / "done").touch()
    return folder / "runs" / "quickstart" / "version_0"
