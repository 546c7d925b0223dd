"""InceptionEMA: the warm-up EMA against a hand-rolled one, validation, resume and export."""

from __future__ import annotations

import threading
from copy import deepcopy
from types import SimpleNamespace

import pytest
import torch
from helpers import random_loader
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import FSDPStrategy
from torch import Tensor

from inception_lightning import create_model
from inception_lightning.callbacks import InceptionEMA, WarmupEMAModel
from inception_lightning.training import InceptionClassifier, LossOptions, export

TINY = {"width": 0.0625, "stem": 299, "aux_head": False, "drop_rate": 0.0}


class RecordRaw(Callback):
    """The module's raw state after every optimiser step."""

    def __init__(self) -> None:
        self.states: list[dict[str, Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.states.append(deepcopy(pl_module.model.state_dict()))


@pytest.mark.parametrize(
    ("precision", "loss"),
    [
        ("32-true", None),
        ("bf16-mixed", None),
        ("bf16-true", None),
        ("32-true", LossOptions(mixup_alpha=0.8, cutmix_alpha=1.0)),
    ],
)
def test_ema_after_k_steps_equals_hand_rolled_ema_with_warmup(
    trainer, precision: str, loss: LossOptions | None
) -> None:
    torch.manual_seed(0)
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY, loss=loss or LossOptions())
    initial = deepcopy(module.model.state_dict())
    ema, record = InceptionEMA(decay=0.25), RecordRaw()

    run = trainer(max_steps=4, limit_val_batches=1, precision=precision, callbacks=[record, ema])
    run.fit(module, random_loader(16), random_loader(4))

    hand = {k: v.clone() for k, v in initial.items()}
    for n, raw in enumerate(record.states):
        decay = min(0.25, (1 + n) / (10 + n))  # 0.1, 0.18, 0.25, 0.25: warm-up, then capped
        for key, value in raw.items():
            hand[key] = (
                decay * hand[key] + (1 - decay) * value.float()
                if value.is_floating_point()
                else value
            )
    average = ema._average_model.module.state_dict()
    for key, value in hand.items():
        assert average[key].dtype == initial[key].dtype  # fp32 under every precision
        torch.testing.assert_close(average[key], value, rtol=1e-5, atol=1e-6)
    assert ema._average_model.num_updates == 4
    assert int(ema._average_model.n_averaged) == 4
    assert "val_ema/acc1" in run.callback_metrics  # the fp32 average beside a bf16-true network
    final = module.model.state_dict()  # the average, copied in at the end of fit
    torch.testing.assert_close(final, {k: v.to(final[k].dtype) for k, v in average.items()})


def test_average_is_validated_beside_raw_only_after_its_first_update(trainer) -> None:
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY)
    late = InceptionEMA(update_starting_at_step=100)
    run = trainer(max_steps=2, callbacks=[late])
    run.fit(module, random_loader(), random_loader())

    assert "val/acc1" in run.callback_metrics
    assert not any(key.startswith("val_ema/") for key in run.callback_metrics)
    assert late.average_network() is None
    initial = late._average_model.module.state_dict()
    changed = [not torch.equal(v, initial[k]) for k, v in module.model.state_dict().items()]
    assert any(changed)  # the never-updated average was not copied over the trained weights

    module = InceptionClassifier(num_classes=4, model_kwargs=TINY)
    run = trainer(max_steps=2, callbacks=[InceptionEMA()])
    run.fit(module, random_loader(), random_loader())
    for name in ("loss", "acc1", "acc5", "ece"):
        assert f"val_ema/{name}" in run.callback_metrics


def fit_with_ema(
    trainer, max_steps: int, tmp_path, ckpt_path=None
) -> tuple[InceptionEMA, RecordRaw]:
    torch.manual_seed(0)
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY)
    ema, record = InceptionEMA(decay=0.5), RecordRaw()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, save_on_train_epoch_end=True)
    run = trainer(
        max_steps=max_steps,
        limit_val_batches=0,
        enable_checkpointing=True,
        callbacks=[record, ema, checkpoint],
    )
    run.fit(module, random_loader(), ckpt_path=ckpt_path, weights_only=True)
    return ema, record


def test_resume_restores_both_weight_sets_and_continues_the_ema(tmp_path, trainer) -> None:
    straight, straight_raw = fit_with_ema(trainer, 3, tmp_path / "straight")
    fit_with_ema(trainer, 2, tmp_path / "first")
    ckpt = tmp_path / "first" / "epoch=0-step=2.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["averaging_state"]["n_averaged"] == 2
    assert set(saved["current_model_state"]) == set(saved["state_dict"])

    resumed, resumed_raw = fit_with_ema(trainer, 3, tmp_path / "resumed", ckpt_path=ckpt)

    assert resumed._average_model.num_updates == 3
    torch.testing.assert_close(
        resumed._average_model.module.state_dict(), straight._average_model.module.state_dict()
    )
    torch.testing.assert_close(resumed_raw.states[-1], straight_raw.states[-1])


def test_export_writes_ema_and_raw_state_dicts_that_load_without_trainer(tmp_path, trainer) -> None:
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="last")
    run = trainer(
        max_steps=2,
        limit_val_batches=0,
        enable_checkpointing=True,
        callbacks=[InceptionEMA()],
        default_root_dir=tmp_path,
    )
    run.callbacks.append(checkpoint)
    run.fit(module, random_loader())
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)

    for weights, key in (("ema", "state_dict"), ("raw", "current_model_state")):
        out = export(tmp_path / "last.ckpt", tmp_path / f"{weights}.pt", weights)
        net = create_model("inception_v3", num_classes=4, checkpoint_path=out, **TINY)
        for name, value in net.state_dict().items():
            assert torch.equal(value, saved[key][f"model.{name}"])
    ema_w = torch.load(tmp_path / "ema.pt")["head.fc.weight"]
    assert not torch.equal(ema_w, torch.load(tmp_path / "raw.pt")["head.fc.weight"])

    plain = trainer(max_steps=1, limit_val_batches=0)
    plain.fit(InceptionClassifier(num_classes=4, model_kwargs=TINY), random_loader())
    plain.save_checkpoint(tmp_path / "plain.ckpt")
    with pytest.raises(ValueError, match="no EMA weights"):
        export(tmp_path / "plain.ckpt", tmp_path / "x.pt", "ema")


def test_sharded_strategies_are_refused() -> None:
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY)
    trainer = SimpleNamespace(strategy=FSDPStrategy())
    with pytest.raises(ValueError, match="FSDPStrategy"):
        InceptionEMA().setup(trainer, module, "fit")


class LockedFactory:
    """An optimiser factory that cannot be deep-copied, as jsonargparse's can hold a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, params):
        return torch.optim.SGD(params, lr=0.01)


def test_the_average_copies_the_network_not_the_module_and_its_factories(trainer) -> None:
    module = InceptionClassifier(num_classes=4, model_kwargs=TINY, optimizer=LockedFactory())
    with pytest.raises(TypeError, match="lock"):
        deepcopy(module)
    ema = InceptionEMA()
    trainer(max_steps=2, limit_val_batches=0, callbacks=[ema]).fit(module, random_loader())
    assert type(ema._average_model.module) is type(module.model)
    assert ema._average_model.num_updates == 2


def test_the_average_of_a_bf16_network_is_kept_in_fp32() -> None:
    network = create_model("inception_v3", 4, **TINY).to(torch.bfloat16)
    average = WarmupEMAModel(network, decay=0.5)
    start = {k: v.clone() for k, v in average.module.state_dict().items()}
    assert {v.dtype for v in start.values() if v.is_floating_point()} == {torch.float32}
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.01)  # in bf16, as a bf16-true optimiser step would

    average.update_parameters(network)

    decay = 0.1  # the first update's warm-up: (1 + 0) / (10 + 0)
    for (key, value), current in zip(start.items(), network.state_dict().values(), strict=True):
        if value.is_floating_point():
            expected = decay * value + (1 - decay) * current.float()
            torch.testing.assert_close(average.module.state_dict()[key], expected)
