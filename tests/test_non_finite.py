"""NonFiniteGuard: NaN/Inf losses and gradients stop the run or skip the batch at their step."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins import MixedPrecision
from torch import Tensor
from torch.amp import GradScaler
from torch.utils.data import DataLoader, Subset, TensorDataset
from typing_extensions import override

from inception_lightning.callbacks import InceptionEMA
from inception_lightning.callbacks.non_finite import NonFiniteError, NonFiniteGuard
from inception_lightning.training import InceptionClassifier

BATCH = 4


class InjectInf(Callback):
    """Turn one stage's output to +inf during the given global steps."""

    def __init__(self, stage: str, steps: set[int]) -> None:
        self.stage = stage
        self.steps = steps
        self.handle: torch.utils.hooks.RemovableHandle | None = None

    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step in self.steps:
            module = pl_module.model.get_submodule(self.stage)
            self.handle = module.register_forward_hook(lambda m, a, out: out + float("inf"))

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.teardown(trainer, pl_module, "fit")

    @override
    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self.teardown(trainer, pl_module, "fit")

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


@pytest.fixture
def sgd_classifier(
    classifier: Callable[..., InceptionClassifier],
) -> Callable[..., InceptionClassifier]:
    """`sgd_classifier(momentum=0.0)`: the tiny v3 without dropout, trained by SGD."""

    def make(momentum: float = 0.0) -> InceptionClassifier:
        return classifier(
            model_kwargs={"width": 0.0625, "aux_head": False, "drop_rate": 0.0},
            optimizer=functools.partial(torch.optim.SGD, lr=0.01, momentum=momentum),
        )

    return make


def _data(batches: int, nan_batches: tuple[int, ...] = ()) -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(batches * BATCH, 3, 75, 75, generator=generator)
    target = torch.randint(0, 4, (batches * BATCH,), generator=generator)
    for i in nan_batches:
        images[i * BATCH, 0, 10, 10] = float("nan")
    return DataLoader(TensorDataset(images, target), batch_size=BATCH)


@pytest.fixture
def steps_trainer(trainer: Callable[..., Trainer]) -> Callable[..., Trainer]:
    """`steps_trainer(max_steps, callbacks, **kwargs)`: a quiet CPU trainer."""

    def make(max_steps: int, callbacks: list[Callback], **kwargs: Any) -> Trainer:
        return trainer(max_steps=max_steps, callbacks=callbacks, **kwargs)

    return make


def _all_finite(state: dict[str, Tensor]) -> bool:
    return all(torch.isfinite(v.float()).all() for v in state.values())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policy": "warn"}, "policy"),
        ({"check_every_n_steps": 0}, "positive"),
        ({"check_every_n_steps": True}, "integer"),
        ({"check_every_n_steps": 1.5}, "integer"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NonFiniteGuard(**kwargs)


def test_stop_names_step_loss_parts_and_stage(
    sgd_classifier: Callable, steps_trainer: Callable
) -> None:
    module = sgd_classifier()
    trainer = steps_trainer(6, [InjectInf("features.mixed_6a", {2}), NonFiniteGuard()])
    with pytest.raises(NonFiniteError) as error:
        trainer.fit(module, _data(6))
    message = str(error.value)
    assert "global step 2 " in message
    assert "train/loss=nan" in message and "train/loss_main=nan" in message
    assert "non-finite is features.mixed_6a" in message
    assert trainer.global_step == 2
    assert _all_finite(module.state_dict())
    assert not any(m._forward_hooks for m in module.modules())  # the probes are gone


def test_stop_keeps_last_good_checkpoint_and_state(
    tmp_path: Path, sgd_classifier: Callable, steps_trainer: Callable
) -> None:
    module = sgd_classifier(momentum=0.9)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=1)
    trainer = steps_trainer(6, [NonFiniteGuard(), checkpoint], enable_checkpointing=True)
    with pytest.raises(NonFiniteError, match=r"global step 3 .*input batch itself"):
        trainer.fit(module, _data(6, nan_batches=(3,)))
    last = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3
    assert _all_finite(last["state_dict"])
    # the module in memory is the checkpointed one: the step was refused, BN statistics restored
    for key, value in module.state_dict().items():
        assert torch.equal(value, last["state_dict"][key]), key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=0-step=3.ckpt", "last.ckpt"]


def test_skip_equals_a_run_without_the_bad_batches(
    tmp_path: Path, sgd_classifier: Callable, steps_trainer: Callable
) -> None:
    guard = NonFiniteGuard(policy="skip")
    faulty = sgd_classifier(momentum=0.9)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = steps_trainer(
        5,
        [InjectInf("features.mixed_5c", {3}), guard, checkpoint],
        enable_checkpointing=True,
    )
    with pytest.warns(UserWarning, match="NonFiniteGuard") as warned:
        trainer.fit(faulty, _data(5, nan_batches=(1,)))
    heads = [str(w.message).split(" (")[0] for w in warned if "NonFiniteGuard" in str(w.message)]
    assert heads == [
        f"NonFiniteGuard: non-finite loss or gradient at global step {s}" for s in (1, 3)
    ]
    assert guard.skipped == 2
    assert trainer.callback_metrics["train/skipped_nonfinite"] == 2

    good = Subset(_data(5).dataset, [i for i in range(5 * BATCH) if i // BATCH in (0, 2, 4)])
    clean = sgd_classifier(momentum=0.9)
    reference = steps_trainer(3, [])
    reference.fit(clean, DataLoader(good, batch_size=BATCH))

    assert _all_finite(faulty.state_dict())
    for key, value in clean.state_dict().items():
        assert torch.equal(value, faulty.state_dict()[key]), key
    momenta = [trainer.optimizers[0].state[p]["momentum_buffer"] for p in faulty.parameters()]
    expected = [reference.optimizers[0].state[p]["momentum_buffer"] for p in clean.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(momenta, expected, strict=True))

    # the count survives the checkpoint and a resumed run
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["callbacks"][guard.state_key] == {"skipped": 2}
    resumed = NonFiniteGuard(policy="skip")
    steps_trainer(6, [resumed]).fit(sgd_classifier(), _data(6), ckpt_path=tmp_path / "last.ckpt")
    assert resumed.skipped == 2


def test_skip_leaves_the_bad_batches_out_of_the_ema(
    sgd_classifier: Callable, steps_trainer: Callable
) -> None:
    ema = InceptionEMA(decay=0.9)
    faulty = sgd_classifier(momentum=0.9)
    trainer = steps_trainer(5, [InjectInf("features.mixed_5c", {3}), NonFiniteGuard("skip"), ema])
    with pytest.warns(UserWarning, match="NonFiniteGuard"):
        trainer.fit(faulty, _data(5, nan_batches=(1,)))

    good = Subset(_data(5).dataset, [i for i in range(5 * BATCH) if i // BATCH in (0, 2, 4)])
    clean_ema = InceptionEMA(decay=0.9)
    steps_trainer(3, [clean_ema]).fit(
        sgd_classifier(momentum=0.9), DataLoader(good, batch_size=BATCH)
    )

    # the warm-up count advanced on the 3 good steps only, and the averages are equal
    assert ema._average_model.num_updates == clean_ema._average_model.num_updates == 3
    averaged = ema.average_network().state_dict()
    for key, value in clean_ema.average_network().state_dict().items():
        assert torch.equal(value, averaged[key]), key


def test_check_every_n_steps_catches_an_unchecked_fault_later(
    sgd_classifier: Callable, steps_trainer: Callable
) -> None:
    module = sgd_classifier()
    trainer = steps_trainer(
        6, [InjectInf("features.mixed_6a", {2}), NonFiniteGuard(check_every_n_steps=2)]
    )
    with pytest.raises(NonFiniteError, match="global step 3 "):  # checks steps 1, 3, 5
        trainer.fit(module, _data(6))


def test_state_dict_round_trip() -> None:
    guard = NonFiniteGuard(policy="skip")
    guard.skipped = 3
    other = NonFiniteGuard(policy="skip")
    other.load_state_dict(guard.state_dict())
    assert other.skipped == 3


def test_fp16_scaler_overflow_is_not_a_fault_but_a_nan_loss_is(
    sgd_classifier: Callable, steps_trainer: Callable
) -> None:
    def fit(nan_batches: tuple[int, ...]) -> GradScaler:
        # a huge initial scale overflows the fp16 gradients: the scaler skips those steps itself
        scaler = GradScaler("cpu", init_scale=2.0**40)
        plugin = MixedPrecision("16-mixed", "cpu", scaler=scaler)
        trainer = steps_trainer(4, [NonFiniteGuard()], plugins=[plugin])
        trainer.fit(sgd_classifier(), _data(4, nan_batches))
        assert trainer.global_step == 4
        return scaler

    assert fit(()).get_scale() < 2.0**40
    with pytest.raises(NonFiniteError, match=r"global step 1 .*input batch itself"):
        fit((1,))
