"""DyingResidualDetector: fires on a dying run only, acts by policy, keeps its state."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from helpers import random_loader
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from inception_lightning import iter_residual_blocks
from inception_lightning.callbacks.dying_residual import DyingResidualDetector, DyingResidualError
from inception_lightning.training import InceptionClassifier, LossOptions, NetworkNotFoundError

NO_SMOOTHING = LossOptions(label_smoothing=0.0)
IR_V1 = {"width": 0.125, "stem": 299, "aux_head": False}


@pytest.fixture
def ir_v1(classifier: Callable[..., InceptionClassifier]) -> Callable[..., InceptionClassifier]:
    """`ir_v1(dying=False)`: the module on the tiny IR-v1, plain cross-entropy and SGD.

    `dying` drives the last block's output, the pre-pool map, to zero.
    """

    def make(dying: bool = False) -> InceptionClassifier:
        module = classifier(
            "inception_resnet_v1", num_classes=2, model_kwargs=IR_V1, loss=NO_SMOOTHING, sgd=0.01
        )
        if dying:  # block8_5 computes relu(x + 0.2 * (W b - 1e4)): zero, no gradient revives it
            nn.init.constant_(module.model.features.block8_5.project.bias, -1e4)
        return module

    return make


@pytest.fixture
def fit(trainer: Callable[..., pl.Trainer]) -> Callable[..., pl.Trainer]:
    """`fit(module, callbacks, root, max_steps, ckpt_path=None)`: a TensorBoard-logged run."""

    def run(
        module: pl.LightningModule,
        callbacks: list[pl.Callback],
        root: Path,
        max_steps: int,
        ckpt_path: Path | None = None,
    ) -> pl.Trainer:
        logged = trainer(
            max_steps=max_steps, callbacks=callbacks, logger=TensorBoardLogger(root, name="tb")
        )
        logged.fit(module, random_loader(classes=2), ckpt_path=ckpt_path)
        return logged

    return run


def events(trainer: pl.Trainer) -> EventAccumulator:
    accumulator = EventAccumulator(trainer.log_dir, size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_fires_within_patience_on_a_dying_run(
    tmp_path: Path, ir_v1: Callable, fit: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    detector = DyingResidualDetector(every_n_steps=1, patience=2)
    with caplog.at_level(logging.WARNING):
        trainer = fit(ir_v1(dying=True), [detector], tmp_path, 4)

    assert detector.fired_steps == [1]  # the second check completes the window; once per episode
    (record,) = [r for r in caplog.records if "dying" in r.getMessage()]
    message = record.getMessage()
    assert "at step 1" in message and "block8_5" in message and "0.1-0.3" in message
    scalars = events(trainer)
    assert [e.value for e in scalars.Scalars("watch.dying/pre_pool_dead_fraction")] == [1.0] * 4
    (text,) = scalars.Tensors("watch.dying/report/text_summary")
    assert text.step == 1
    assert text.tensor_proto.string_val[0].decode() == message
    for dotted, _ in iter_residual_blocks(trainer.lightning_module):
        block = dotted.rsplit(".", 1)[-1]
        assert len(scalars.Scalars(f"watch.residual.norm_ratio/{block}")) == 4
        assert len(scalars.Scalars(f"watch.residual.output_zero_fraction/{block}")) == 4


def test_never_fires_on_a_healthy_run(tmp_path: Path, ir_v1: Callable, fit: Callable) -> None:
    detector = DyingResidualDetector(every_n_steps=1, patience=2)
    trainer = fit(ir_v1(), [detector], tmp_path, 6)

    assert detector.fired_steps == []
    assert detector.streak == 0
    dead = [e.value for e in events(trainer).Scalars("watch.dying/pre_pool_dead_fraction")]
    assert len(dead) == 6 and max(dead) < 0.5


def test_stop_policy_stops_and_leaves_a_resumable_checkpoint(
    tmp_path: Path, ir_v1: Callable, fit: Callable
) -> None:
    detector = DyingResidualDetector(every_n_steps=1, patience=2, policy="stop", dirpath=tmp_path)
    module = ir_v1(dying=True)
    trainer = fit(module, [detector], tmp_path, 10)

    assert trainer.global_step == 2
    checkpoint = tmp_path / "dying-residual-step=1.ckpt"
    state = torch.load(checkpoint, weights_only=False)
    assert state["global_step"] == 2
    assert state["callbacks"][detector.state_key]["fired_steps"] == [1]
    resumed = DyingResidualDetector(every_n_steps=1, patience=2)
    fit(ir_v1(), [resumed], tmp_path / "resumed", 3, ckpt_path=checkpoint)
    assert resumed.fired_steps == [1]  # restored; the still-dead weights keep the episode open
    assert resumed.streak == 3


def test_raise_policy_raises_and_leaves_no_hook(
    tmp_path: Path, ir_v1: Callable, fit: Callable
) -> None:
    detector = DyingResidualDetector(every_n_steps=1, patience=1, policy="raise")
    module = ir_v1(dying=True)
    with pytest.raises(DyingResidualError, match="residual_scale"):
        fit(module, [detector], tmp_path, 4)
    assert count_hooks(module) == 0


def count_hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_no_hook_survives_teardown_on_module_or_ema_copy(
    tmp_path: Path, ir_v1: Callable, fit: Callable
) -> None:
    module = ir_v1()
    ema = EMAWeightAveraging(decay=0.9)
    fit(module, [ema, DyingResidualDetector(every_n_steps=1)], tmp_path, 2)

    assert count_hooks(module) == 0
    assert count_hooks(ema._average_model) == 0


def test_state_dict_round_trip() -> None:
    detector = DyingResidualDetector(patience=3)
    detector.window.extend([0.95, 0.97])
    detector.streak = 2
    detector.fired_steps = [150]
    restored = DyingResidualDetector(patience=3)
    restored.load_state_dict(detector.state_dict())
    assert restored.state_dict() == {"window": [0.95, 0.97], "streak": 2, "fired_steps": [150]}
    assert restored.window.maxlen == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 1.0}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"patience": 0}, "patience"),
        ({"every_n_steps": 1.5}, "every_n_steps"),
        ({"policy": "ignore"}, "policy"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DyingResidualDetector(**kwargs)


def test_needs_an_inception_net(tmp_path: Path, ir_v1: Callable, fit: Callable) -> None:
    module = ir_v1()
    # not an InceptionNet; the conv is named `features`, where the module's optimiser looks
    module.model = nn.Sequential(
        OrderedDict(
            features=nn.Conv2d(3, 2, 3),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(2, 2),
        )
    )
    with pytest.raises(NetworkNotFoundError, match="InceptionClassifier holds no Inception net"):
        fit(module, [DyingResidualDetector()], tmp_path, 1)
