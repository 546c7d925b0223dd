"""The anatomy view: timm's and torchvision's Inceptions, given our weights, are watched exactly
as ours is; a module with no Inception network, two, or an unknown one at `network=` gets one
line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import timm
import torch
import torchvision
from helpers import DatasetsModule
from torch import Tensor, nn
from user_project import Noise, Recorded, UserModule, calibrate_batchnorm

from inception_lightning import create_model
from inception_lightning.callbacks import (
    BranchActivationStats,
    DyingResidualDetector,
    FineTuning,
    GradCam,
)
from inception_lightning.cli import main
from inception_lightning.explain import (
    MapOptions,
    ReportOptions,
    SampleOptions,
    SanityOptions,
    ScoreOptions,
)
from inception_lightning.models.anatomy import Site, anatomy_of
from inception_lightning.models.weights import map_to_timm_state_dict
from inception_lightning.training import NetworkNotFoundError

CONF = Path(__file__).resolve().parents[1] / "conf"
SIZE = 75  # the smallest input all four take at full width (timm's have no width multiplier)
CLASSES = 4


def torchvision_v3() -> nn.Module:
    return torchvision.models.inception_v3(
        weights=None, aux_logits=False, init_weights=False, num_classes=CLASSES
    )


# the foreign network, and the registered name of ours with the same layout
FOREIGN: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "timm inception_v3": (lambda: timm.create_model("inception_v3", num_classes=4), "inception_v3"),
    "timm inception_v4": (lambda: timm.create_model("inception_v4", num_classes=4), "inception_v4"),
    "timm inception_resnet_v2": (
        lambda: timm.create_model("inception_resnet_v2", num_classes=4),
        "inception_resnet_v2",
    ),
    "torchvision inception_v3": (torchvision_v3, "inception_v3"),
}


def with_our_weights(name: str) -> tuple[nn.Module, nn.Module]:
    """Ours (random weights, calibrated BatchNorm statistics) and the foreign network loaded
    with them through `map_to_timm_state_dict`."""
    make_foreign, ours_name = FOREIGN[name]
    torch.manual_seed(0)
    ours = create_model(ours_name, num_classes=CLASSES, aux_head=False, drop_rate=0.0)
    calibrate_batchnorm(ours, SIZE)
    foreign = make_foreign()
    foreign.load_state_dict(map_to_timm_state_dict(ours.state_dict(), foreign.state_dict()))
    return ours, foreign.eval()


def last_35x35_block(net: nn.Module) -> str:
    """The module of the network's last block on the 35x35 grid (7x7 at 75 px), by its anatomy:
    the last block's 1x1 map at 75 px would make any two maps equal."""
    anatomy = anatomy_of(net)
    grids = anatomy.grids(net)
    return next(b.module for b in reversed(anatomy.blocks) if grids[b.name] == (35, 35))


def watch(net: nn.Module, root: Path) -> tuple[dict[str, float], Tensor]:
    """One training step (lr 0: the weights stay) with the statistics callbacks, and one
    validation epoch with Grad-CAM: every logged `watch.*` scalar, and the Grad-CAM maps."""
    torch.manual_seed(0)
    cam = GradCam(
        layers=last_35x35_block(net),
        sample=SampleOptions(per_class=1, max_samples=2, max_misclassified=0),
        maps=MapOptions(sign="signed", batch_size=2),
        scores=ScoreOptions(steps=1),
        sanity=SanityOptions(samples=0),
        report=ReportOptions(enabled=False),
    )
    logger = Recorded()
    callbacks = [BranchActivationStats(every_n_steps=1), DyingResidualDetector(every_n_steps=1)]
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=1, limit_val_batches=1,
        num_sanity_val_steps=0, logger=logger, callbacks=[*callbacks, cam],
        default_root_dir=root, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )  # fmt: skip
    data = Noise(n=2, size=SIZE, classes=CLASSES)
    trainer.fit(UserModule(net, lr=0.0), datamodule=DatasetsModule(data, data, batch_size=2))
    watched = {k: v for k, v in logger.metrics.items() if k.startswith("watch")}
    return watched, cam.last["gradcam"].maps


@pytest.mark.e2e  # full-size networks, trained a step
@pytest.mark.filterwarnings("ignore:.*cannot show")
@pytest.mark.parametrize("name", list(FOREIGN))
def test_foreign_networks_with_our_weights_are_watched_as_ours(name: str, tmp_path: Path) -> None:
    ours, foreign = with_our_weights(name)
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = ours(x)
        torch.testing.assert_close(foreign(x), logits, rtol=0, atol=1e-6)  # measured: equal
    assert logits.std() > 0.1

    our_stats, our_maps = watch(ours, tmp_path / "ours")
    stats, maps = watch(foreign, tmp_path / "foreign")

    assert sorted(stats) == sorted(our_stats)  # the same blocks, branches and grids by name
    blocks = {k.split("/")[1] for k in our_stats if k.startswith("watch.branch.mean")}
    assert len(blocks) == len(anatomy_of(ours).blocks)
    ratios = [k for k in our_stats if k.startswith("watch.residual.norm_ratio/")]
    assert len(ratios) == len(anatomy_of(ours).residual_blocks)
    assert bool(ratios) == ("resnet" in name)
    # Every statistic to 1e-5 relative (measured: equal, bit for bit, on all four).
    for key, value in our_stats.items():
        assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-12), key
    assert our_maps.flatten(1).std(dim=1).min() > 0.05  # the maps are no constants
    torch.testing.assert_close(maps, our_maps, rtol=0, atol=1e-6)  # measured: equal
    last = anatomy_of(foreign).blocks[-1]  # the default layer: the same last block as ours
    assert anatomy_of(foreign).explain == (last.module,)
    assert last.name == anatomy_of(ours).blocks[-1].name


def test_tables_map_functional_pools_and_inline_residuals() -> None:
    v3 = anatomy_of(timm.create_model("inception_v3"))
    mixed_6a, mixed_7c = v3.blocks[3], v3.blocks[-1]
    # Mixed_6a's max pool is F.max_pool2d: the channels after its 384 + 96 conv channels
    assert mixed_6a.branches["pool"] == Site("Mixed_6a", channels=(480, None))
    # Mixed_7c's split filter banks: 2 x 384 channels after the 320 of its 1x1 branch
    assert mixed_7c.branches["b3x3"] == Site("Mixed_7c", channels=(320, 1088))
    assert mixed_7c.branches["b3x3dbl"] == Site("Mixed_7c", channels=(1088, 1856))
    # the avg pool inside forward is observed at the conv that follows it
    assert mixed_7c.branches["pool"] == Site("Mixed_7c.branch_pool")
    assert v3.explain == ("Mixed_7c",) and v3.heads == ("fc",)

    irv2 = anatomy_of(timm.create_model("inception_resnet_v2"))
    first, last = irv2.residual_blocks[0], irv2.residual_blocks[-1]
    assert (first.name, first.module, first.scale) == ("block35_1", "repeat.0", 0.17)
    assert first.residual == Site("repeat.0.conv2d", scale=0.17)  # `conv2d(...) * scale + x`
    assert (last.name, last.module, last.scale) == ("block8_10", "block8", 1.0)
    assert len(irv2.residual_blocks) == 10 + 20 + 10
    assert irv2.grids(timm.create_model("inception_resnet_v2"))["block17_20"] == (17, 17)


def tiny() -> nn.Module:
    return create_model("inception_v3", num_classes=2, width=0.0625, aux_head=False)


class Twins(UserModule):
    """A student and a teacher: two Inception networks."""

    def __init__(self) -> None:
        super().__init__(tiny())
        self.teacher = tiny()


class Wrapped(UserModule):
    """An Inception network two levels down, beside a ResNet (an architecture without a
    table)."""

    def __init__(self) -> None:
        super().__init__(nn.ModuleDict({"inception": tiny(), "backbone": nn.Sequential()}))
        self.net["backbone"] = torchvision.models.resnet18(num_classes=2)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        return nn.functional.cross_entropy(self.net["inception"](images), labels)


def fit_once(module: pl.LightningModule, callback: pl.Callback, root: Path, logger: object) -> None:
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=0, logger=logger, callbacks=[callback],
        default_root_dir=root, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )  # fmt: skip
    images = Noise(n=2, size=75, classes=2)
    trainer.fit(module, datamodule=DatasetsModule(images, images, batch_size=2))


KNOWN = (
    "inception_lightning InceptionNet, timm inception_v3, timm inception_v4, timm "
    "inception_resnet_v2, torchvision inception_v3"
)


@pytest.mark.parametrize(
    ("module", "callback", "message"),
    [
        (
            lambda: UserModule(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten())),
            lambda: GradCam(),
            "GradCam: UserModule holds no Inception network: its modules are net (Sequential), "
            f"and the callbacks know {KNOWN}; put one of those in the module, or pass "
            "network='<dotted name>' naming one inside it",
        ),
        (
            Twins,
            lambda: FineTuning(),
            "FineTuning: Twins holds 2 Inception networks, 'net' (inception_lightning "
            "inception_v3), 'teacher' (inception_lightning inception_v3); pass network='net' "
            "(or another of them) to say which one to watch",
        ),
        (
            Wrapped,
            lambda: BranchActivationStats(network="net.backbone"),
            "BranchActivationStats: network='net.backbone' in Wrapped is a ResNet, no Inception "
            f"architecture the callbacks know ({KNOWN}); pass one of Wrapped's: 'net.inception' "
            "(inception_lightning inception_v3)",
        ),
    ],
    ids=["none", "two", "unknown"],
)
def test_no_network_two_or_an_unknown_one_each_get_one_line(
    module: Callable[[], pl.LightningModule],
    callback: Callable[[], pl.Callback],
    message: str,
    tmp_path: Path,
) -> None:
    with pytest.raises(NetworkNotFoundError) as raised:
        fit_once(module(), callback(), tmp_path, Recorded())
    assert str(raised.value) == message


@pytest.mark.filterwarnings("ignore:.*cannot show")
def test_network_names_the_one_to_watch(tmp_path: Path) -> None:
    logger = Recorded()
    stats = BranchActivationStats(every_n_steps=1, network="net.inception")
    fit_once(Wrapped(), stats, tmp_path, logger)
    assert logger.metrics["watch.branch.mean.8x8/mixed_7c/b3x3"] > 0


def test_console_script_names_a_network_that_is_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main([
            "fit", "-c", str(CONF / "quickstart.yaml"), "--trainer.callbacks.network", "model.head",
            "--model.model_kwargs", '{"width": 0.0625, "stem": "79"}',
            "--data.init_args.num_samples", "40", "--trainer.enable_progress_bar", "false",
        ])  # fmt: skip
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "inception-lightning: error: GradCam: network='model.head' in InceptionClassifier is a "
        f"ClassifierHead, no Inception architecture the callbacks know ({KNOWN}); pass one of "
        "InceptionClassifier's: 'model' (inception_lightning inception_resnet_v1)"
    )
