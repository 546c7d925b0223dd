"""EMA and fine-tuning on a user's plain LightningModule around timm's Inception-v3."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import timm
import torch
import torch.nn.functional as F
from helpers import DatasetsModule
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import Tensor
from user_project import Noise, UserModule, calibrate_batchnorm

from inception_lightning.callbacks import FineTuning, InceptionEMA

SIZE = 75


@pytest.fixture(scope="module")
def timm_v3() -> dict[str, Tensor]:
    """The weights of one random timm Inception-v3 (4 classes) with the BatchNorm statistics of
    a batch, built once for the module."""
    torch.manual_seed(0)
    return calibrate_batchnorm(timm.create_model("inception_v3", num_classes=4)).state_dict()


def user_module(weights: dict[str, Tensor], lr: float) -> UserModule:
    net = timm.create_model("inception_v3", num_classes=4)
    net.load_state_dict(weights)
    return UserModule(net, lr=lr)


def data() -> DatasetsModule:
    return DatasetsModule(Noise(6, SIZE, 4), Noise(2, SIZE, 4, seed=1), batch_size=2)


class RawWeights(Callback):
    """The module's state after every optimiser step."""

    def __init__(self) -> None:
        self.states: list[dict[str, Tensor]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_) -> None:
        self.states.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


@pytest.mark.e2e  # timm's full-size Inception-v3, trained
def test_ema_is_validated_and_checkpointed_on_a_plain_module(
    timm_v3: dict[str, Tensor], tmp_path: Path
) -> None:
    module = user_module(timm_v3, lr=0.01)
    raw = RawWeights()
    checkpoints = ModelCheckpoint(tmp_path, filename="last")
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0,
        callbacks=[InceptionEMA(decay=0.5), raw, checkpoints], logger=False,
        default_root_dir=tmp_path, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=data())

    # TF's warm-up by hand: decays min(0.5, (1 + n) / (10 + n)) = 0.1, 0.18..., 0.25
    checkpoint = torch.load(checkpoints.best_model_path, weights_only=True)
    for key in ("net.fc.weight", "net.Mixed_7c.branch_pool.bn.running_mean"):
        expected = 0.1 * timm_v3[key.removeprefix("net.")] + 0.9 * raw.states[0][key]
        for n, state in enumerate(raw.states[1:], start=1):
            decay = min(0.5, (1 + n) / (10 + n))
            expected = decay * expected + (1 - decay) * state[key]
        torch.testing.assert_close(checkpoint["state_dict"][key], expected)
        torch.testing.assert_close(checkpoint["current_model_state"][key], raw.states[-1][key])
        assert not torch.allclose(expected, raw.states[-1][key])
    assert checkpoint["averaging_state"]["n_averaged"] == 3

    # validation ran on the average: its logged loss is the average's, not the raw weights'
    images, labels = (torch.stack([t for t, _ in Noise(2, SIZE, 4, seed=1)]), torch.arange(2))
    images = Noise(2, SIZE, 4, seed=1).normalize(images)

    def val_loss(state: dict[str, Tensor]) -> float:
        evaluated = user_module(timm_v3, lr=0.0)
        evaluated.load_state_dict(state)
        with torch.no_grad():
            return F.cross_entropy(evaluated.net.eval()(images), labels).item()

    # (large: BatchNorm statistics of 2-image batches at the 1x1 grid 75 px leave; no matter)
    logged = trainer.callback_metrics["val/loss"].item()
    assert logged == pytest.approx(val_loss(checkpoint["state_dict"]), rel=1e-5)
    assert logged != pytest.approx(val_loss(checkpoint["current_model_state"]), rel=1e-3)


def test_finetuning_freezes_a_timm_backbone_and_its_batchnorm(
    timm_v3: dict[str, Tensor], tmp_path: Path
) -> None:
    module = user_module(timm_v3, lr=0.1)
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=0,
        callbacks=[FineTuning(freeze_backbone_epochs=1, bn_policy="frozen")], logger=False,
        default_root_dir=tmp_path, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=data())

    after = module.net.state_dict()
    changed = {k for k, v in timm_v3.items() if not torch.equal(v, after[k])}
    assert changed == {"fc.weight", "fc.bias"}  # the head the anatomy names, nothing else
    compared = [k for k in timm_v3 if "running_" in k or "num_batches" in k]
    assert len(compared) == 3 * 94  # ... among them every BatchNorm's statistics
