"""BranchActivationStats: hand-computed statistics, tags in the event file, hook lifetime."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import SingleDeviceStrategy
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from user_project import Recorded

from inception_lightning import InceptionNet, iter_branches, iter_residual_blocks
from inception_lightning.callbacks._sections import branch_tag, grids
from inception_lightning.callbacks.branch_stats import BranchActivationStats
from inception_lightning.models.anatomy import anatomy_of
from inception_lightning.models.net import Architecture
from inception_lightning.models.specs import Conv, Stage
from inception_lightning.training import InceptionClassifier, LossOptions

NO_SMOOTHING = LossOptions(label_smoothing=0.0)
IR_V1 = {"width": 0.125, "stem": 299, "aux_head": False}


@pytest.fixture
def ir_v1(classifier: Callable[..., InceptionClassifier]) -> Callable[..., InceptionClassifier]:
    """`ir_v1(model=None)`: the module on the tiny IR-v1, or on `model`: plain CE and SGD."""

    def make(model: InceptionNet | None = None) -> InceptionClassifier:
        module = classifier(
            "inception_resnet_v1", num_classes=2, model_kwargs=IR_V1, loss=NO_SMOOTHING, sgd=0.01
        )
        if model is not None:
            module.model = model
        return module

    return make


class Fixed(nn.Module):
    """A branch whose output is a given tensor."""

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value)

    def forward(self, x: Tensor) -> Tensor:
        return self.value.clone()


@pytest.fixture
def fit(trainer: Callable[..., pl.Trainer], tmp_path: Path) -> Callable[..., pl.Trainer]:
    """`fit(module, callbacks, images, max_steps)`: a TensorBoard-logged run on `images`."""

    def run(
        module: pl.LightningModule, callbacks: list[pl.Callback], images: Tensor, max_steps: int
    ) -> pl.Trainer:
        labels = torch.arange(len(images)) % 2
        logged = trainer(
            max_steps=max_steps, callbacks=callbacks, logger=TensorBoardLogger(tmp_path, name="tb")
        )
        logged.fit(module, DataLoader(TensorDataset(images, labels), batch_size=4))
        return logged

    return run


def events(trainer: pl.Trainer) -> EventAccumulator:
    accumulator = EventAccumulator(trainer.log_dir, size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def controlled_model() -> InceptionNet:
    """A network of one residual block on 2 channels whose branch outputs and residual are known.

    No stem: the block's shortcut is the input. Branch `a` (1 channel): sample 0 is
    [[1, 2], [3, 4]], sample 1 is zero. Branch `b` (2 channels): channel 0 is zero everywhere
    (dead), channel 1 is 3 everywhere. The projection is zero with bias (2, 0) and the scale 0.5:
    the residual is 1 on channel 0 and 0 on channel 1 (dead).
    """
    spec = {"a": (Conv(1),), "b": (Conv(2),)}
    arch = Architecture(
        stems={299: ()},
        body=(Stage("block", spec, residual_scale=0.5),),
        aux_after="block",
        aux_default=False,
    )
    net = InceptionNet("controlled", arch, num_classes=2, in_chans=2, drop_rate=0.0)
    block = net.features.block
    a = torch.zeros(2, 1, 2, 2)
    a[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.zeros(2, 2, 2, 2)
    b[:, 1] = 3.0
    block.branches["a"], block.branches["b"] = Fixed(a), Fixed(b)
    with torch.no_grad():
        block.project.weight.zero_()
        block.project.bias.copy_(torch.tensor([2.0, 0.0]))
    return net


@pytest.mark.parametrize("ranks", [1, 2])
def test_statistics_match_hand_computed_values(
    ir_v1: Callable, fit: Callable, monkeypatch: pytest.MonkeyPatch, ranks: int
) -> None:
    reduced = []

    def reduce(
        self: SingleDeviceStrategy, tensor: Tensor, *args: object, **kwargs: object
    ) -> Tensor:
        if tensor.numel() == 1:  # Lightning's own decisions
            return tensor
        reduced.append((tensor.numel(), kwargs["reduce_op"]))
        return tensor * ranks  # the sum over `ranks` ranks that saw the same batch

    monkeypatch.setattr(SingleDeviceStrategy, "reduce", reduce)
    images = torch.full((2, 2, 2, 2), 2.0)  # the shortcut: squared norm 64
    callback = BranchActivationStats(every_n_steps=1)
    trainer = fit(ir_v1(controlled_model()), [callback], images, 1)

    assert reduced == [(4 + 5 + 5 + 5, "sum")]  # one call: 3 sums and a count per channel
    scalars = events(trainer)
    expected = {
        # a: 8 values, sum 10, sum of squares 30, 4 zeros, its one channel alive
        "watch.branch.mean/block/a": 10 / 8,
        "watch.branch.std/block/a": math.sqrt(30 / 8 - (10 / 8) ** 2),
        "watch.branch.zero_fraction/block/a": 0.5,
        "watch.branch.dead_fraction/block/a": 0.0,
        "watch.branch.energy_share/block/a": 30 / 102,
        # b: 16 values, sum 24, sum of squares 72, channel 0 dead
        "watch.branch.mean/block/b": 1.5,
        "watch.branch.std/block/b": 1.5,
        "watch.branch.zero_fraction/block/b": 0.5,
        "watch.branch.dead_fraction/block/b": 0.5,
        "watch.branch.energy_share/block/b": 72 / 102,
        # residual: 16 values, 8 ones, channel 1 dead; squared norm 8 against 64
        "watch.residual.mean/block": 0.5,
        "watch.residual.std/block": 0.5,
        "watch.residual.zero_fraction/block": 0.5,
        "watch.residual.dead_fraction/block": 0.5,
        "watch.residual.norm_ratio/block": math.sqrt(8 / 64),
    }
    for tag, value in expected.items():
        (event,) = scalars.Scalars(tag)
        assert event.step == 0
        assert event.value == pytest.approx(value, rel=1e-6), tag
    assert "watch.branch/heatmap" in scalars.Tags()["images"]


def test_every_block_is_logged_at_the_cadence(ir_v1: Callable, fit: Callable) -> None:
    module = ir_v1()
    model = module.model
    callback = BranchActivationStats(every_n_steps=2, histogram_every_n_steps=4)
    trainer = fit(module, [callback], torch.randn(4, 3, 75, 75), 5)

    scalars = events(trainer)
    tags = scalars.Tags()
    blocks: dict[str, float] = {}
    grid = grids(anatomy_of(model), model)
    assert grid["block35_1"] == "35x35" and grid["block17_1"] == "17x17"  # at 299 px
    for dotted, branch, _ in iter_branches(model):
        block = dotted.rsplit(".", 1)[-1]
        for stat in ("mean", "std", "zero_fraction", "dead_fraction", "energy_share"):
            logged = scalars.Scalars(f"watch.branch.{stat}.{grid[block]}/{block}/{branch}")
            assert [e.step for e in logged] == [1, 3]  # the steps Lightning logs on
        share = scalars.Scalars(f"watch.branch.energy_share.{grid[block]}/{block}/{branch}")
        blocks[block] = blocks.get(block, 0.0) + share[-1].value
        assert f"watch.branch.activation.{grid[block]}/{block}/{branch}" in tags["histograms"]
    assert blocks and all(total == pytest.approx(1.0, abs=1e-5) for total in blocks.values())
    residuals = [dotted.rsplit(".", 1)[-1] for dotted, _ in iter_residual_blocks(model)]
    assert len(residuals) == 20
    for block in residuals:
        assert [e.step for e in scalars.Scalars(f"watch.residual.norm_ratio/{block}")] == [1, 3]
        assert f"watch.residual.activation/{block}" in tags["histograms"]
        assert f"watch.shortcut.activation/{block}" in tags["histograms"]


class HookCounter(pl.Callback):
    """Counts the forward hooks on the module and on the EMA copy when a step starts."""

    def __init__(self, ema: EMAWeightAveraging) -> None:
        self.ema = ema
        self.counts: list[tuple[int, int]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_) -> None:
        self.counts.append((count_hooks(pl_module), count_hooks(self.ema._average_model)))


def count_hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_no_hook_survives_teardown_on_module_or_ema_copy(ir_v1: Callable, fit: Callable) -> None:
    module = ir_v1()
    model = module.model
    ema = EMAWeightAveraging(decay=0.9)
    counter = HookCounter(ema)
    callbacks = [ema, BranchActivationStats(every_n_steps=2), counter]
    fit(module, callbacks, torch.randn(4, 3, 75, 75), 3)

    taps = sum(1 for _ in iter_branches(model)) + 2 * 20  # branches; residual and shortcut
    assert counter.counts == [(0, 0), (taps, 0), (0, 0)]  # armed on step 1 only
    assert count_hooks(module) == 0
    assert count_hooks(ema._average_model) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"every_n_steps": 0},
        {"every_n_steps": 2.5},
        {"histogram_every_n_steps": -1},
        {"histogram_samples": 0},
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BranchActivationStats(**kwargs)


def test_without_a_logger_it_warns_once_and_observes_nothing(
    tmp_path: Path, ir_v1: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = BranchActivationStats(every_n_steps=1)
    armed = []
    monkeypatch.setattr(stats._probe, "arm", lambda taps, samples=0: armed.append(list(taps)))
    trainer = pl.Trainer(
        default_root_dir=tmp_path, logger=False, max_steps=2, callbacks=[stats],
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    images = torch.full((4, 2, 2, 2), 2.0)
    loader = DataLoader(TensorDataset(images, torch.zeros(4, dtype=torch.long)), batch_size=2)
    with pytest.warns(UserWarning, match="BranchActivationStats: the trainer has no logger") as w:
        trainer.fit(ir_v1(controlled_model()), loader)
    assert trainer.global_step == 2
    assert sum("no logger" in str(warning.message) for warning in w) == 1
    assert all(taps == [] for taps in armed)  # no hook on either observed step


def test_no_hook_survives_an_exception(
    ir_v1: Callable, fit: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = ir_v1(controlled_model())
    training_step = module.training_step

    def failing(batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Fails in its second step, while the hooks are registered."""
        if module.global_step == 1:
            raise RuntimeError("boom")
        return training_step(batch, batch_idx)

    monkeypatch.setattr(module, "training_step", failing)
    images = torch.full((2, 2, 2, 2), 2.0)
    with pytest.raises(RuntimeError, match="boom"):
        fit(module, [BranchActivationStats(every_n_steps=1)], images, 3)
    assert count_hooks(module) == 0


def test_statistics_under_bf16_reduce_in_fp32(ir_v1: Callable, trainer: Callable) -> None:
    module = ir_v1()
    seen: dict[tuple[str, str], Tensor] = {}

    def keep(key: tuple[str, str], module: nn.Module, args: object, output: Tensor) -> None:
        seen.setdefault(key, output.detach().clone())

    handles = [
        branch.register_forward_hook(partial(keep, (dotted.rsplit(".", 1)[-1], name)))
        for dotted, name, branch in iter_branches(module.model)
    ]
    grid = grids(anatomy_of(module.model), module.model)
    logger = Recorded()
    images = torch.randn(8, 3, 75, 75, generator=torch.Generator().manual_seed(1))
    loader = DataLoader(TensorDataset(images, torch.arange(8) % 2), batch_size=8)
    stats = BranchActivationStats(every_n_steps=1)
    trainer(max_steps=1, precision="bf16-mixed", logger=logger, callbacks=[stats]).fit(
        module, loader
    )
    for handle in handles:
        handle.remove()

    assert seen and all(x.dtype == torch.bfloat16 for x in seen.values())  # bf16 activations
    for (block, branch), x in seen.items():
        x = x.double()  # the hand computation, in fp64
        alive = x.transpose(0, 1).flatten(1).ne(0).any(dim=1)
        expected = {
            "mean": x.mean(),
            "std": x.std(correction=0),
            "zero_fraction": x.eq(0).double().mean(),
            "dead_fraction": 1 - alive.double().mean(),
        }
        for stat, value in expected.items():
            # fp32 sums of up to 35,000 values: within 1e-5 of fp64. A bf16 sum is off by ~1e-3.
            tag = branch_tag(stat, grid[block], block, branch)
            assert logger.metrics[tag] == pytest.approx(float(value), rel=1e-5), tag
