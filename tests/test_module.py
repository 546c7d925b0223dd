"""InceptionClassifier and FineTuning: loss, metrics, BN policy, freezing, checkpoints."""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY, random_loader
from lightning.pytorch import Callback, Trainer, seed_everything
from torch.nn.modules.batchnorm import _BatchNorm

from inception_lightning import create_model
from inception_lightning.callbacks import FineTuning
from inception_lightning.data import (
    ImageFolderDataModule,
    LoaderOptions,
    PredictDataModule,
    SyntheticDataModule,
)
from inception_lightning.models import ModelOptions
from inception_lightning.training import (
    ComputeOptions,
    InceptionClassifier,
    InitOptions,
    LossOptions,
)

TINY_AUX = {"width": 0.0625, "stem": 79, "aux_head": True}


def smoothed_ce(logits: list[float], target: int, eps: float) -> float:
    """-sum_k q_k log p_k with q = (1 - eps) one-hot + eps / K, by hand."""
    log_z = math.log(sum(math.exp(v) for v in logits))
    log_p = [v - log_z for v in logits]
    q = [(1 - eps) * (k == target) + eps / len(logits) for k in range(len(logits))]
    return -sum(qk * lp for qk, lp in zip(q, log_p, strict=True))


def test_loss_matches_hand_computation_with_aux_term() -> None:
    module = InceptionClassifier(num_classes=3, model_kwargs=TINY, loss=LossOptions(aux_weight=0.4))
    logits = [[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]]
    aux = [[0.0, 1.0, 0.0], [-2.0, 0.0, 3.0]]
    target = [0, 2]
    main_hand = sum(smoothed_ce(v, t, 0.1) for v, t in zip(logits, target, strict=True)) / 2
    aux_hand = sum(smoothed_ce(v, t, 0.1) for v, t in zip(aux, target, strict=True)) / 2

    total, main, aux_loss = module.loss(
        torch.tensor(logits), torch.tensor(aux), torch.tensor(target)
    )

    assert main.item() == pytest.approx(main_hand, rel=1e-6)
    assert aux_loss.item() == pytest.approx(aux_hand, rel=1e-6)
    assert total.item() == pytest.approx(main_hand + 0.4 * aux_hand, rel=1e-6)
    total, main, aux_loss = module.loss(torch.tensor(logits), None, torch.tensor(target))
    assert aux_loss is None
    assert total.item() == pytest.approx(main_hand, rel=1e-6)


def test_loss_is_fp32_for_bf16_logits() -> None:
    """Under bf16-true (no autocast to upcast it) the loss is still computed in fp32."""
    module = InceptionClassifier(num_classes=3, model_kwargs=TINY, loss=LossOptions(aux_weight=0.4))
    logits = [[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]]  # exact in bf16
    target = [0, 2]
    hand = sum(smoothed_ce(v, t, 0.1) for v, t in zip(logits, target, strict=True)) / 2

    total, main, _ = module.loss(
        torch.tensor(logits, dtype=torch.bfloat16), None, torch.tensor(target)
    )

    assert total.dtype == main.dtype == torch.float32
    assert total.item() == pytest.approx(hand, rel=1e-6)  # a bf16 loss is off by ~1e-3


def test_fit_logs_losses_and_validates_in_eval_mode_on_main_logits(trainer) -> None:
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY_AUX)
    val = random_loader(size=79, batch_size=8)
    run = trainer(max_epochs=1)
    run.fit(module, random_loader(size=79), val)

    metrics = run.callback_metrics
    for key in ("train/loss", "train/loss_main", "train/loss_aux", "val/acc1", "val/acc5"):
        assert key in metrics
    assert not any(key.startswith("val_ema/") for key in metrics)
    total = metrics["train/loss_main"] + 0.4 * metrics["train/loss_aux"]
    assert metrics["train/loss"].item() == pytest.approx(total.item(), rel=1e-5)
    images, target = next(iter(val))
    module.eval()
    with torch.no_grad():
        logits = module.model(images)
    expected = F.cross_entropy(logits, target, label_smoothing=0.1)
    assert metrics["val/loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert 0.0 <= metrics["val/ece"].item() <= 1.0


def test_frozen_bn_statistics_do_not_move(trainer) -> None:
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY)
    bn_before = {
        k: v.clone()
        for k, v in module.model.state_dict().items()
        if "running" in k or "batches" in k
    }
    conv_before = module.model.features[0].conv.weight.detach().clone()

    policy = FineTuning(bn_policy="frozen")
    run = trainer(max_steps=3, limit_val_batches=0, callbacks=[policy])
    run.fit(module, random_loader())

    bn_after = module.model.state_dict()
    assert bn_before
    assert all(torch.equal(v, bn_after[k]) for k, v in bn_before.items())
    assert not torch.equal(conv_before, module.model.features[0].conv.weight)
    # whatever train() calls happen, a frozen BN layer runs on its running statistics
    module.train()
    policy.on_fit_start(run, module)
    with torch.no_grad():
        module.model(next(iter(random_loader()))[0])
    assert all(not m.training for m in module.model.modules() if isinstance(m, _BatchNorm))
    assert all(torch.equal(v, module.model.state_dict()[k]) for k, v in bn_before.items())
    policy.teardown(run, module, "fit")
    assert not any(m._forward_pre_hooks for m in module.model.modules())


class RecordBackbone(Callback):
    def __init__(self) -> None:
        self.snapshots: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer: Trainer, pl_module: InceptionClassifier) -> None:
        net = pl_module.model
        self.snapshots.append((net.features[0].conv.weight.clone(), net.head.fc.weight.clone()))


def test_backbone_frozen_for_first_epochs_then_trained(trainer) -> None:
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY)
    conv0, fc0 = module.model.features[0].conv.weight.clone(), module.model.head.fc.weight.clone()
    record = RecordBackbone()

    callbacks = [FineTuning(freeze_backbone_epochs=1), record]
    run = trainer(max_epochs=2, limit_train_batches=1, limit_val_batches=0, callbacks=callbacks)
    run.fit(module, random_loader())

    (conv1, fc1), (conv2, _) = record.snapshots
    assert torch.equal(conv1, conv0)
    assert not torch.equal(fc1, fc0)
    assert not torch.equal(conv2, conv1)


def test_fine_tune_from_local_checkpoint_replaces_heads(tmp_path) -> None:
    source = create_model("inception_v3", num_classes=4, **TINY_AUX)
    torch.save(source.state_dict(), tmp_path / "source.pt")

    module = InceptionClassifier(
        num_classes=3,
        model_kwargs=TINY_AUX,
        init=InitOptions(checkpoint_path=str(tmp_path / "source.pt")),
    )

    assert module.model.head.fc.out_features == 3
    assert module.model.aux.fc.out_features == 3
    for name, value in source.features.state_dict().items():
        assert torch.equal(module.model.features.state_dict()[name], value)
    assert "init" not in module.hparams and "checkpoint_path" not in module.hparams


def test_load_from_checkpoint_rebuilds_without_config(tmp_path, trainer) -> None:
    module = InceptionClassifier(
        num_classes=4, model_kwargs=TINY, loss=LossOptions(label_smoothing=0.2)
    )
    run = trainer(max_steps=1, limit_val_batches=0)
    run.fit(module, random_loader())
    run.save_checkpoint(tmp_path / "last.ckpt")

    loaded = InceptionClassifier.load_from_checkpoint(tmp_path / "last.ckpt", weights_only=True)

    assert loaded.hparams.loss == {  # plain values
        "label_smoothing": 0.2,
        "aux_weight": 0.4,
        "class_weights": "none",
        "mixup_alpha": 0.0,
        "cutmix_alpha": 0.0,
        "mixup_prob": 1.0,
        "switch_prob": 0.5,
        "mixup_off_epoch": None,
    }
    assert loaded.loss_options == LossOptions(label_smoothing=0.2)
    assert loaded.hparams.model_kwargs == ModelOptions.of(TINY).as_kwargs()  # plain values
    for name, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)


def test_channels_last_and_compile_options_train(monkeypatch, trainer) -> None:
    compiled = []

    def fake_compile(fn, **options):  # compiling takes minutes on 2 CPU cores; check the wiring
        compiled.append(options)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    module = InceptionClassifier(
        num_classes=4,
        model_kwargs=TINY,
        compute=ComputeOptions(channels_last=True, compile={"dynamic": False}),
    )
    trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1).fit(
        module, random_loader(), random_loader()
    )

    assert module.model.features[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert compiled == [{"dynamic": False}, {"dynamic": False}]  # forward_with_aux and forward
    assert "val/acc1" in module.trainer.callback_metrics


class Dtypes(Callback):
    """The dtypes of the logits and of the loss in every training step."""

    def __init__(self) -> None:
        self.logits: set[torch.dtype] = set()
        self.loss: set[torch.dtype] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        hook = lambda module, args, out: self.logits.add(out.dtype)  # noqa: E731
        self._handle = pl_module.model.head.register_forward_hook(hook)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._handle.remove()
        self.loss.add(outputs["loss"].dtype)


@pytest.mark.e2e  # training until it learns: 4 epochs
@pytest.mark.parametrize(
    ("precision", "channels_last"), [("32-true", False), ("bf16-mixed", True)], ids=["fp32", "bf16"]
)
def test_tiny_model_learns_the_synthetic_dataset(
    trainer, precision: str, channels_last: bool
) -> None:
    data = SyntheticDataModule(
        num_classes=4, image_size=79, num_samples=320, val_fraction=0.2, difficulty=0.0,
        loader=LoaderOptions(batch_size=16),
    )  # fmt: skip
    seed_everything(0)
    module = InceptionClassifier(
        num_classes=4,
        model_kwargs={"width": 0.0625, "stem": 151, "aux_head": False, "drop_rate": 0.0},
        optimizer=partial(torch.optim.AdamW, lr=3e-3, weight_decay=0.0),
        scheduler=partial(torch.optim.lr_scheduler.ConstantLR, factor=1.0),
        compute=ComputeOptions(channels_last=channels_last),
    )
    dtypes = Dtypes()
    run = trainer(max_epochs=4, num_sanity_val_steps=0, precision=precision, callbacks=[dtypes])
    run.fit(module, datamodule=data)

    assert run.callback_metrics["val/acc1"].item() >= 0.5  # chance is 0.25
    assert dtypes.logits == {torch.bfloat16 if precision == "bf16-mixed" else torch.float32}
    assert dtypes.loss == {torch.float32}  # whatever the network computes in


def test_integer_images_are_refused_with_the_fix() -> None:
    module = InceptionClassifier("inception_v3", num_classes=4, model_kwargs=TINY)
    batch = (torch.zeros(2, 3, 75, 75, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match=r"torch.uint8 images.*datamodule=dm"):
        module.training_step(batch, 0)


class _Marker:
    """A local of the caller: it must go when the caller's frame does."""


@pytest.mark.parametrize("build", ["module", "synthetic", "folder", "predict"])
def test_building_a_module_or_datamodule_leaves_the_callers_frame_to_reference_counting(
    build: str, image_tree: Callable[..., Path]
) -> None:
    """Lightning's `save_hyperparameters` looks up its caller's frame with a local that makes a
    cycle; those frames' locals (a data loader with worker processes, say) then stayed until a
    garbage-collector pass, which stopped each loader's workers with a 5 s timeout."""
    root = image_tree(classes=("a", "b"), splits=("train", "val"), n=2)
    builders = {
        "module": lambda: InceptionClassifier("inception_v3", 2, model_kwargs=TINY),
        "synthetic": lambda: SyntheticDataModule(num_samples=8),
        "folder": lambda: ImageFolderDataModule(str(root), loader=LoaderOptions(num_workers=0)),
        "predict": lambda: PredictDataModule(str(root / "val"), classes=["a", "b"]),
    }

    def caller() -> weakref.ref:
        marker = _Marker()
        builders[build]()
        return weakref.ref(marker)

    builders[build]()  # first imports (timm's, by the default optimiser) keep their own cycles
    gc.disable()
    try:
        assert caller()() is None  # freed on return, by reference counting
    finally:
        gc.enable()
