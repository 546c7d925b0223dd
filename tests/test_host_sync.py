"""No host-device sync on training steps that write no logs, found with the profiler."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from helpers import random_loader
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from inception_lightning.callbacks import (
    BranchActivationStats,
    DyingResidualDetector,
    HostSyncAudit,
    InceptionEMA,
    LoggingStepProgressBar,
)
from inception_lightning.training import InceptionClassifier

STEPS, LOG_EVERY = 4, 2


@pytest.fixture
def audited(tmp_path: Path) -> Callable[..., HostSyncAudit]:
    """`audited(module, audit, *callbacks)`: a short logged run with the audit, as users run."""

    def fit(
        module: pl.LightningModule, audit: HostSyncAudit, *callbacks: pl.Callback
    ) -> HostSyncAudit:
        trainer = pl.Trainer(  # with the progress bar: the audit must see its reads too
            accelerator="cpu",
            max_steps=STEPS,
            log_every_n_steps=LOG_EVERY,
            gradient_clip_val=2.0,
            logger=TensorBoardLogger(tmp_path),
            callbacks=[*callbacks, audit],
            limit_val_batches=0,
            enable_checkpointing=False,
            enable_model_summary=False,
        )
        trainer.fit(module, random_loader(n=16, batch_size=2))
        return audit

    return fit


@pytest.fixture
def ir_v1(classifier: Callable[..., InceptionClassifier]) -> Callable[..., InceptionClassifier]:
    """`ir_v1(**kwargs)`: the module on a tiny Inception-ResNet-v1."""
    kwargs = {"width": 0.0625, "aux_head": False}
    return partial(classifier, "inception_resnet_v1", model_kwargs=kwargs)


def test_default_training_syncs_only_on_logging_steps(audited: Callable, ir_v1: Callable) -> None:
    audit = audited(
        ir_v1(),
        HostSyncAudit(first_step=0, num_steps=STEPS, stacks=False),  # counts only: 7x faster
        InceptionEMA(decay=0.9),
        BranchActivationStats(every_n_steps=LOG_EVERY),
        DyingResidualDetector(every_n_steps=LOG_EVERY),
        LoggingStepProgressBar(),
        LearningRateMonitor(logging_interval="step"),
    )

    assert sorted(audit.syncs) == list(range(STEPS))
    assert audit.logging_steps == {1, 3}
    assert audit.unexpected == []
    # the audit does see syncs: reading the logged values on the logging steps
    for step in audit.logging_steps:
        ops = {sync.op for sync in audit.syncs[step]}
        assert "aten::_local_scalar_dense" in ops


def test_host_state_reads_of_torch_optimisers_are_not_syncs(
    audited: Callable, ir_v1: Callable
) -> None:
    # AdamW reads its step counts, kept on the host, with .item() in every step
    module = ir_v1(optimizer=partial(torch.optim.AdamW, lr=1e-3))
    audit = audited(module, HostSyncAudit(first_step=0, num_steps=2))
    assert audit.unexpected == []


class ReadsTheLoss(InceptionClassifier):
    """Reads its loss back every step, as code that prints it would."""

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = super().training_step(batch, batch_idx)
        self.last_loss = loss.item()
        return loss


def test_a_sync_on_every_step_is_found_and_named(audited: Callable) -> None:
    module = ReadsTheLoss(
        "inception_resnet_v1", num_classes=4, model_kwargs={"width": 0.0625, "aux_head": False}
    )
    with pytest.warns(UserWarning, match="host-device syncs on steps that wrote no logs"):
        audit = audited(module, HostSyncAudit(first_step=0, num_steps=2))

    assert audit.logging_steps == {1}
    assert [sync.step for sync in audit.unexpected] == [0]
    sync = audit.unexpected[0]
    assert sync.op == "aten::_local_scalar_dense"
    assert "test_host_sync.py" in sync.frames[0] and "training_step" in sync.frames[0]


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="first_step must be a non-negative integer, got -1"):
        HostSyncAudit(first_step=-1)
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        HostSyncAudit(num_steps=0)
