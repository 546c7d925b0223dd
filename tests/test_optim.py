"""The recipe's optimiser and schedule, parameter groups and lr scaling."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from timm.optim import RMSpropTF
from torch.utils.data import DataLoader, TensorDataset

from inception_lightning.training import (
    InceptionClassifier,
    InceptionRMSprop,
    InceptionStepDecay,
    OptimOptions,
)

TINY = {"width": 0.0625, "stem": 299, "aux_head": False}


class RecordLr(Callback):
    def __init__(self) -> None:
        self.lrs: list[dict[str, float]] = []

    def on_train_epoch_start(self, trainer: Trainer, pl_module: InceptionClassifier) -> None:
        groups = trainer.optimizers[0].param_groups
        self.lrs.append({g["name"]: g["lr"] for g in groups})


class TinyData(LightningDataModule):
    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        images = torch.randn(2 * self.batch_size, 3, 75, 75)
        labels = torch.arange(2 * self.batch_size) % 4
        return DataLoader(TensorDataset(images, labels), batch_size=self.batch_size)


@pytest.fixture
def fit(trainer: Callable[..., Trainer]) -> Callable[..., RecordLr]:
    """`fit(module, max_epochs, **trainer_kwargs)`: one batch an epoch; the lrs of each epoch."""

    def run(module: InceptionClassifier, max_epochs: int, **kwargs) -> RecordLr:
        record = RecordLr()
        trainer(
            max_epochs=max_epochs,
            limit_train_batches=1,
            limit_val_batches=0,
            callbacks=[record],
            **kwargs,
        ).fit(module, TinyData(batch_size=16))
        return record

    return run


def test_default_lr_decays_by_094_every_two_epochs(fit: Callable) -> None:
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY)
    record = fit(module, max_epochs=6)

    optimizer = module.trainer.optimizers[0]
    assert isinstance(optimizer, RMSpropTF)
    defaults = optimizer.defaults
    assert (defaults["alpha"], defaults["eps"], defaults["momentum"]) == (0.9, 1.0, 0.9)
    for epoch, lrs in enumerate(record.lrs):
        expected = 0.045 * 0.94 ** (epoch // 2)
        assert lrs == {"backbone": pytest.approx(expected), "head": pytest.approx(expected)}


def test_rmsprop_puts_eps_inside_the_square_root() -> None:
    param = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = InceptionRMSprop([param], weight_decay=0.0)
    param.grad = torch.tensor([2.0])
    optimizer.step()

    square_avg = 0.9 * 1.0 + 0.1 * 2.0**2  # TF starts the average at ones
    expected = 1.0 - 0.045 * 2.0 / math.sqrt(square_avg + 1.0)
    assert param.item() == pytest.approx(expected, rel=1e-6)


def test_warmup_ramps_linearly_then_decays() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = InceptionStepDecay(optimizer, warmup_epochs=2, warmup_start_factor=0.1)
    lrs = []
    for _ in range(7):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()

    assert lrs == pytest.approx([0.1, 0.55, 1.0, 1.0, 0.94, 0.94, 0.94**2])


def test_sgd_with_backbone_lr_and_batch_size_scaling(fit: Callable) -> None:
    module = InceptionClassifier(
        num_classes=4,
        model_kwargs=TINY,
        optimizer=partial(torch.optim.SGD, lr=0.1, momentum=0.9),
        optim=OptimOptions(backbone_lr_scale=0.1, lr_reference_batch_size=8),
    )
    record = fit(module, max_epochs=1, accumulate_grad_batches=2)

    assert isinstance(module.trainer.optimizers[0], torch.optim.SGD)
    scale = 16 * 1 * 2 / 8  # per-device batch x devices x accumulation / reference
    assert record.lrs[0] == {
        "backbone": pytest.approx(0.1 * scale * 0.1),
        "head": pytest.approx(0.1 * scale),
    }
