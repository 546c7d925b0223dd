"""Faults: a killed run resumes exactly, writes are atomic, concurrent runs get own versions."""

from __future__ import annotations

import gc
import io
import os
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import (
    KILLED_RUN_HEAD,
    assert_same,
    fit_in,
    kill_when_written,
    logged_metrics,
)
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import TensorDataset

from inception_lightning import files
from inception_lightning.data.resumable import ResumableDataLoader
from inception_lightning.explain import html_report
from inception_lightning.training.checkpoints import AtomicCheckpointIO
from inception_lightning.training.loggers import ExclusiveTensorBoardLogger

STEPS_PER_EPOCH = 13  # 120 samples: 12 for val, 108 // 8 = 13 training batches
TINY_RUN = (
    KILLED_RUN_HEAD
    + """
data:
  class_path: inception_lightning.data.SyntheticDataModule
  init_args: {num_classes: 4, image_size: 75, num_samples: 120, loader: {batch_size: 8}}
"""
)


@pytest.mark.parametrize(
    "accelerator",
    [
        "cpu",
        # Exact on a GPU only because the loader saves the CUDA RNG states: dropout draws there.
        # Command: .venv/bin/pytest -q tests/test_faults.py -k "killed_run and gpu"
        pytest.param(
            "gpu", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
        ),
    ],
)
@pytest.mark.e2e
def test_killed_run_resumes_to_the_same_weights_and_metrics(
    tmp_path: Path, accelerator: str
) -> None:
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    for folder in (killed, whole):
        folder.mkdir()
        config = TINY_RUN.replace("accelerator: cpu", f"accelerator: {accelerator}")
        (folder / "run.yaml").write_text(config)
    last = killed / "ckpt" / "last.ckpt"
    kill_when_written(killed, last)
    resumed_from = torch.load(last, weights_only=True)["global_step"]
    assert resumed_from % STEPS_PER_EPOCH != 0  # killed mid-epoch, before the end of training
    assert resumed_from < 2 * STEPS_PER_EPOCH

    # In this process: only the killed run needs its own.
    fit_in(killed, "--ckpt_path", "last")  # resolved through ModelCheckpoint's dirpath
    fit_in(whole)

    a = torch.load(killed / "ckpt" / "last.ckpt", weights_only=True)
    b = torch.load(whole / "ckpt" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 2 * STEPS_PER_EPOCH
    assert "current_model_state" in a  # the EMA weights are in `state_dict`, raw ones here
    for key in ("state_dict", "current_model_state", "averaging_state", "optimizer_states"):
        assert_same(a[key], b[key], key)
    assert_same(a["lr_schedulers"], b["lr_schedulers"], "lr_schedulers")
    after_resume = [row for row in logged_metrics(whole, 0) if int(row["step"]) >= resumed_from]
    assert logged_metrics(killed, 1) == after_resume  # every value logged after the resume
    assert sum("val_ema/acc1" in row for row in after_resume) >= 1


def test_resumable_loader_continues_mid_epoch_with_the_same_batches_and_rng() -> None:
    data = TensorDataset(torch.arange(20))
    torch.manual_seed(1)
    whole = ResumableDataLoader(data, batch_size=3, shuffle=True)
    batches = iter(whole)
    first = [next(batches)[0] for _ in range(2)]
    state = whole.state_dict()
    expected_noise = torch.rand(3)
    rest = [b[0] for b in batches]

    torch.manual_seed(5)  # a new process: another RNG state and another shuffle generator
    resumed = ResumableDataLoader(data, batch_size=3, shuffle=True)
    resumed.load_state_dict(state)
    batches = iter(resumed)
    resumed_rest = [next(batches)[0]]
    assert torch.equal(torch.rand(3), expected_noise)  # RNG as it was when the state was saved
    resumed_rest += [b[0] for b in batches]
    assert len(first) + len(rest) == len(resumed) == 7
    assert len(resumed_rest) == 5
    assert_same(resumed_rest, rest)
    assert sorted(torch.cat(first + resumed_rest).tolist()) == list(range(20))
    next_epoch = [b[0] for b in whole], [b[0] for b in resumed]
    assert_same(*next_epoch)  # the generator goes on into the next epoch's order too


def test_a_resumable_loader_with_workers_is_freed_without_the_garbage_collector() -> None:
    """No reference cycle through the persistent workers' iterator: one made the collector free
    the loader, in an order that left each worker 5 s to notice its shutdown."""
    loader = ResumableDataLoader(TensorDataset(torch.arange(8)), batch_size=2, num_workers=1,
                                 persistent_workers=True)  # fmt: skip
    next(iter(loader))
    freed = weakref.ref(loader)
    gc.disable()
    try:
        del loader
        assert freed() is None
    finally:
        gc.enable()


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> dict[int, torch.Tensor]:
    """CUDA's RNG calls, as a process with 2 GPUs makes them; returns the states set, by device."""
    states = {
        0: torch.tensor([1, 2], dtype=torch.uint8),
        1: torch.tensor([3, 4], dtype=torch.uint8),
    }
    set_states: dict[int, torch.Tensor] = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(states))
    monkeypatch.setattr(
        torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in states.values()]
    )
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, d: set_states.__setitem__(d, s))
    return set_states


def test_resumable_loader_saves_and_restores_every_cuda_devices_rng(
    two_gpus: dict[int, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = ResumableDataLoader(TensorDataset(torch.arange(6)), batch_size=2)
    next(iter(loader))
    state = torch.load(_saved(loader.state_dict()), weights_only=True)  # as a checkpoint holds it
    assert [s.tolist() for s in state["rng"]["cuda"]] == [[1, 2], [3, 4]]
    resumed = ResumableDataLoader(TensorDataset(torch.arange(6)), batch_size=2)
    resumed.load_state_dict(state)
    assert two_gpus == {}  # set when the resumed epoch starts, with the other RNGs
    next(iter(resumed))
    assert {d: s.tolist() for d, s in two_gpus.items()} == {0: [1, 2], 1: [3, 4]}

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # resumed with one GPU fewer
    two_gpus.clear()
    fewer = ResumableDataLoader(TensorDataset(torch.arange(6)), batch_size=2)
    fewer.load_state_dict(state)
    with pytest.warns(UserWarning, match="CUDA RNG states of 2 devices but this process sees 1"):
        next(iter(fewer))
    assert list(two_gpus) == [0]


def test_resumable_loader_state_from_before_cuda_states_still_loads(
    two_gpus: dict[int, torch.Tensor],
) -> None:
    loader = ResumableDataLoader(TensorDataset(torch.arange(6)), batch_size=2)
    state = loader.state_dict()
    del state["rng"]["cuda"]
    loader.load_state_dict(state)
    assert len(list(loader)) == 3 and two_gpus == {}


def _saved(state: dict[str, Any]) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


class _HalfWrite:
    """A file that takes half of the first write, then fails as a full disk or crash would."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def write(self, data: bytes) -> int:
        self.f.write(bytes(data)[: len(data) // 2])
        self.f.flush()
        raise OSError(28, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> _HalfWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def test_checkpoint_save_failing_half_way_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"w": torch.arange(1000)}, path)
    good = path.read_bytes()
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, _HalfWrite(f)))
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"w": -torch.arange(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert torch.equal(io.load_checkpoint(path, weights_only=True)["w"], torch.arange(1000))
    assert os.listdir(tmp_path) == ["last.ckpt"]  # the partial temp file was removed
    io.save_checkpoint({"w": -torch.arange(1000)}, path)
    assert torch.equal(io.load_checkpoint(path, weights_only=True)["w"], -torch.arange(1000))


def test_report_write_failing_half_way_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    html_report.write_atomic(tmp_path, "summary.json", b'{"old": true}')
    real_fdopen = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda *a: _HalfWrite(real_fdopen(*a)))
    with pytest.raises(OSError, match="No space"):
        html_report.write_atomic(
            tmp_path, "summary.json", b'{"new": true, "long": "' + b"x" * 99 + b'"}'
        )
    assert (tmp_path / "summary.json").read_bytes() == b'{"old": true}'
    assert os.listdir(tmp_path) == ["summary.json"]


def test_loggers_that_pick_a_version_together_claim_different_folders(tmp_path: Path) -> None:
    plain = [TensorBoardLogger(tmp_path / "plain", name="run") for _ in range(2)]
    assert [logger.version for logger in plain] == [0, 0]  # Lightning's listing collides
    claimed = [ExclusiveTensorBoardLogger(tmp_path / "claimed", name="run") for _ in range(3)]
    assert [logger.version for logger in claimed] == [0, 1, 2]
    assert sorted(os.listdir(tmp_path / "claimed" / "run")) == [
        "version_0",
        "version_1",
        "version_2",
    ]
