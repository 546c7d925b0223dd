"""Mixup and cutmix in the module: soft targets with label smoothing folded in, the loss on
them, the switch-off epoch, and clean images everywhere but the training step."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from inception_lightning.callbacks import InceptionEMA
from inception_lightning.cli import main
from inception_lightning.data import SyntheticDataModule, SyntheticDataset
from inception_lightning.training import (
    InceptionClassifier,
    LossOptions,
    load_network,
    read_checkpoint,
)
from inception_lightning.training.mixup import BatchMixer

CONF = Path(__file__).resolve().parents[1] / "conf"


def _module(**mixup: float) -> InceptionClassifier:
    loss = LossOptions(label_smoothing=0.1, aux_weight=0.4, **mixup)
    return InceptionClassifier("inception_v3", num_classes=2, model_kwargs=TINY, loss=loss)


def _two_images(size: int = 4) -> torch.Tensor:
    """Image 0 all +1, image 1 all -1: a mixed pixel tells the blend weight."""
    return torch.stack([torch.ones(3, size, size), -torch.ones(3, size, size)])


def test_soft_target_loss_equals_the_hand_computation_on_two_images() -> None:
    module = _module(mixup_alpha=1.0)
    np.random.seed(0)  # timm draws lam from NumPy's generator
    mixed, soft = module.mixer(_two_images(), torch.tensor([0, 1]))
    lam = (mixed[0, 0, 0, 0].item() + 1) / 2  # lam * 1 + (1 - lam) * -1
    assert 0.0 < lam < 1.0 and mixed[1, 0, 0, 0].item() == pytest.approx(1 - 2 * lam)
    # smoothing 0.1 over 2 classes: 0.95 on the label, 0.05 off; image 1 is mixed with image 0
    t0 = [lam * 0.95 + (1 - lam) * 0.05, lam * 0.05 + (1 - lam) * 0.95]
    t1 = [lam * 0.05 + (1 - lam) * 0.95, lam * 0.95 + (1 - lam) * 0.05]
    torch.testing.assert_close(soft, torch.tensor([t0, t1]))

    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]])  # softmax (1/2, 1/2), (3/4, 1/4)
    aux_logits = torch.tensor([[math.log(3), 0.0], [0.0, 0.0]])  # (3/4, 1/4), (1/2, 1/2)
    half, three, one = math.log(0.5), math.log(0.75), math.log(0.25)
    main = -(t0[0] * half + t0[1] * half + t1[0] * three + t1[1] * one) / 2
    aux = -(t0[0] * three + t0[1] * one + t1[0] * half + t1[1] * half) / 2
    total, got_main, got_aux = module.loss(logits, aux_logits, soft)
    assert got_main.item() == pytest.approx(main, rel=1e-6)
    assert got_aux.item() == pytest.approx(aux, rel=1e-6)
    assert total.item() == pytest.approx(main + 0.4 * aux, rel=1e-6)

    # unmixed, the same loss is the label-smoothed cross-entropy of the class indices
    hard, smooth = torch.tensor([0, 1]), torch.tensor([[0.95, 0.05], [0.05, 0.95]])
    torch.testing.assert_close(module.loss(logits, None, hard), module.loss(logits, None, smooth))


def test_cutmix_targets_weigh_each_image_by_the_area_it_keeps() -> None:
    module = _module(cutmix_alpha=1.0)
    np.random.seed(3)
    mixed, soft = module.mixer(_two_images(16), torch.tensor([0, 1]))
    kept = (mixed[0] == 1).float().mean().item()  # the share of image 0 left in its mix
    assert 0.0 < kept < 1.0
    assert set(mixed.unique().tolist()) == {-1.0, 1.0}  # cut and pasted, not blended
    torch.testing.assert_close(soft[0], torch.tensor([kept * 0.9 + 0.05, (1 - kept) * 0.9 + 0.05]))


def test_switch_probability_picks_cutmix_or_mixup() -> None:
    always_cut = _module(mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=1.0).mixer
    never_cut = _module(mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=0.0).mixer
    np.random.seed(1)
    cut = [always_cut(_two_images(8), torch.tensor([0, 1]))[0] for _ in range(5)]
    blended = [never_cut(_two_images(8), torch.tensor([0, 1]))[0] for _ in range(5)]
    assert all(set(m.unique().tolist()) <= {-1.0, 1.0} for m in cut)
    assert all(len(m.unique()) == 2 and m.abs().max() < 1 for m in blended)


def test_mixing_stops_at_the_off_epoch_and_needs_an_even_batch() -> None:
    mixer = BatchMixer(LossOptions(mixup_alpha=0.8, mixup_off_epoch=2), 2)
    assert [mixer.active(epoch) for epoch in range(4)] == [True, True, False, False]
    assert not BatchMixer(LossOptions(), 2).active(0)  # both alphas 0: off
    with pytest.raises(ValueError, match="batch size must be even, got a batch of 3"):
        mixer(torch.zeros(3, 3, 4, 4), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match=r"loss.mixup_prob must lie in \[0.0, 1.0\], got 2"):
        LossOptions(mixup_alpha=1.0, mixup_prob=2)


def test_training_mixes_until_the_off_epoch_and_validation_sees_clean_images(
    trainer, datamodule
) -> None:
    """The network's input, caught at its first layer, against the batches Lightning hands over."""
    train = SyntheticDataset("train", 8, num_classes=2, image_size=75)
    val = SyntheticDataset("val", 4, num_classes=2, image_size=75)
    data = datamodule(train, val, batch_size=4)
    module = InceptionClassifier(
        "inception_v3", num_classes=2, model_kwargs=TINY,
        loss=LossOptions(mixup_alpha=1.0, cutmix_alpha=1.0, mixup_off_epoch=1),
    )  # fmt: skip
    seen: list[tuple[str, int, bool]] = []
    handed: dict[str, torch.Tensor] = {}

    class Watch(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            handed["train"] = batch[0].clone()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            seen.append(
                ("after the step", pl_module.current_epoch, torch.equal(batch[0], handed["train"]))
            )

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, *_) -> None:
            handed["val"] = batch[0].clone()

    def catch(layer: torch.nn.Module, args: tuple[torch.Tensor]) -> None:
        stage = "train" if module.training else "val"
        if stage in handed:  # not the sanity check's batches
            seen.append((stage, module.current_epoch, torch.equal(args[0], handed[stage])))

    next(iter(module.model.features.children())).register_forward_pre_hook(catch)
    run = trainer(max_epochs=2, callbacks=[Watch()], num_sanity_val_steps=0)
    run.fit(module, datamodule=data)
    train_seen = [(epoch, clean) for stage, epoch, clean in seen if stage == "train"]
    assert train_seen == [(0, False), (0, False), (1, True), (1, True)]
    assert [clean for stage, _, clean in seen if stage == "val"] == [True, True]
    assert [clean for stage, _, clean in seen if stage == "after the step"] == [True] * 4


def test_checkpoint_of_a_mixup_run_with_ema_reloads_and_rebuilds_its_network(
    tmp_path: Path,
) -> None:
    """Mixup and cutmix with EMA on the built-in data: the checkpoint loads with
    weights_only=True, holds the average, and restores the module with its mixing options."""
    options = LossOptions(mixup_alpha=0.8, cutmix_alpha=1.0, mixup_off_epoch=5)
    module = InceptionClassifier("inception_v3", num_classes=4, model_kwargs=TINY, loss=options)
    data = SyntheticDataModule(
        num_classes=4, image_size=75, num_samples=24, loader={"batch_size": 8}
    )
    ema = InceptionEMA(decay=0.5)
    run = Trainer(
        accelerator="cpu", max_epochs=1, limit_val_batches=1, num_sanity_val_steps=0,
        logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True), ema],
    )  # fmt: skip
    run.fit(module, datamodule=data)
    assert "val_ema/acc1" in run.callback_metrics
    path = tmp_path / "last.ckpt"
    saved = read_checkpoint(path)  # weights_only=True: the options are plain values
    assert saved["hyper_parameters"]["loss"] == dataclasses.asdict(options)
    restored = InceptionClassifier.load_from_checkpoint(path)
    assert restored.mixer.options == options
    average = ema.average_network()
    network = load_network(path).network  # the EMA weights the checkpoint holds
    images = torch.randn(2, 3, 75, 75)
    with torch.no_grad():
        torch.testing.assert_close(network(images), average.eval()(images))


@pytest.mark.e2e
def test_readme_augmentation_and_mixing_flags_reach_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's heaviest small-data run through the console script, shrunk: the policy,
    erasing and mixing flags (given as partial groups) reach the data and the module, and the
    groups' other values keep theirs."""
    monkeypatch.chdir(tmp_path)
    main(["make-dataset", "--out", "lt", "--num_classes", "2", "--num_samples", "16",
          "--image_size", "47", "--class_counts", "[6, 2]"])  # fmt: skip
    main(["fit", "-c", str(CONF / "quickstart.yaml"), "-c", str(CONF / "small_data.yaml"),
          "--data.init_args.root", "lt", "--trainer.callbacks", "[]",
          "--data.init_args.augment", "{policy: trivialaugment, erasing: 0.25}",
          "--model.loss", "{mixup_alpha: 0.8, cutmix_alpha: 1.0, mixup_off_epoch: 25}",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
          "--cpu_recipe", "null", "--data.init_args.loader.batch_size", "4",
          "--model.model_kwargs.width", "0.0625"])  # fmt: skip
    (path,) = (tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints").glob("*.ckpt")
    saved = read_checkpoint(path)
    augment = saved["datamodule_hyper_parameters"]["augment"]
    assert (augment["policy"], augment["erasing"]) == ("trivialaugment", 0.25)
    expected = LossOptions(mixup_alpha=0.8, cutmix_alpha=1.0, mixup_off_epoch=25)
    assert saved["hyper_parameters"]["loss"] == dataclasses.asdict(expected)
    restored = InceptionClassifier.load_from_checkpoint(path)
    assert restored.mixer.active(0) and not restored.mixer.active(25)
