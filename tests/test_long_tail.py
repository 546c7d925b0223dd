"""Imbalanced folders: make-dataset's per-class counts, the class-balanced sampler, the counts
reported at setup."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from helpers import TINY
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import TensorDataset

from inception_lightning.callbacks import TensorBoardDashboards
from inception_lightning.cli import main
from inception_lightning.data import ImageFolderDataModule, SyntheticDataset, write_dataset
from inception_lightning.data.balanced_sampler import ClassBalancedSampler
from inception_lightning.data.builtin.make_dataset import long_tail_counts
from inception_lightning.data.data_options import LoaderOptions
from inception_lightning.data.loading import make_loader
from inception_lightning.data.resumable import ResumableDataLoader
from inception_lightning.training import InceptionClassifier, LossOptions

CONF = Path(__file__).resolve().parents[1] / "conf"


def _counts(folder: Path) -> dict[str, int]:
    return {d.name: len(list(d.glob("*.png"))) for d in sorted(folder.iterdir())}


def test_long_tail_counts_fall_exponentially() -> None:
    # 200 * 0.1 ** (i / 9), rounded: CIFAR-10-LT's profile with imbalance ratio 10
    assert long_tail_counts(200, 20, 10) == [200, 155, 120, 93, 72, 56, 43, 33, 26, 20]
    assert long_tail_counts(12, 3, 3) == [12, 6, 3]


def test_make_dataset_writes_a_long_tail_and_a_balanced_val(tmp_path: Path) -> None:
    out = tmp_path / "lt"
    main(["make-dataset", "--out", str(out), "--num_classes", "3", "--num_samples", "30",
          "--image_size", "32", "--long_tail", "[12, 3]"])  # fmt: skip
    assert _counts(out / "train") == {"circle": 12, "square": 6, "triangle": 3}
    assert _counts(out / "val") == {"circle": 1, "square": 1, "triangle": 1}
    # the images are those of the dataset drawn with the same counts, class after class
    drawn = SyntheticDataset("train", 0, 3, 32, class_counts=[12, 6, 3])
    assert drawn.labels == [0] * 12 + [1] * 6 + [2] * 3


def test_make_dataset_takes_explicit_class_counts(tmp_path: Path) -> None:
    out = tmp_path / "counts"
    main(["make-dataset", "--out", str(out), "--num_classes", "2", "--num_samples", "8",
          "--image_size", "32", "--class_counts", "[1, 4]", "--val_fraction", "0.25"])  # fmt: skip
    assert _counts(out / "train") == {"circle": 1, "square": 4}
    assert _counts(out / "val") == {"circle": 1, "square": 1}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--long_tail", "[3, 12]"], "long_tail needs head >= tail >= 1, got [3, 12]"),
        (["--class_counts", "[4]"], "class_counts needs one count of at least 1 for each of"),
        (["--class_counts", "[4, 4]", "--long_tail", "[4, 2]"], "not both"),
    ],
)
def test_bad_counts_end_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["make-dataset", "--out", str(tmp_path / "x"), "--num_classes", "2", *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err


TINY_47 = {"width": 0.0625, "stem": 79, "aux_head": False, "drop_rate": 0.0}
LABELS = [0] * 12 + [1] * 3 + [2] * 1  # 16 samples, 12:3:1


def test_sampler_weights_make_every_class_equally_likely() -> None:
    sampler = ClassBalancedSampler(LABELS, seed=0)
    assert sampler.class_counts == [12, 3, 1]
    by_class = torch.zeros(3, dtype=torch.float64).index_add_(
        0, torch.tensor(LABELS), sampler.weights
    )
    torch.testing.assert_close(by_class, torch.ones(3, dtype=torch.float64))  # 12/12, 3/3, 1/1
    sqrt = ClassBalancedSampler(LABELS, power=0.5, seed=0).weights
    torch.testing.assert_close(
        sqrt[[0, 12, 15]], torch.tensor([12, 3, 1.0]) ** -0.5, check_dtype=False
    )
    drawn = Counter(LABELS[i] for epoch in range(200) for i in _epoch(sampler, epoch))
    assert len(sampler) == 16 and sum(drawn.values()) == 3200
    assert all(abs(drawn[c] / 3200 - 1 / 3) < 0.03 for c in range(3)), drawn  # not 3/4 class 0


def _epoch(sampler: ClassBalancedSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_sampler_splits_each_epoch_across_ranks() -> None:
    alone = ClassBalancedSampler(LABELS, seed=3, num_replicas=1, rank=0)
    ranks = [ClassBalancedSampler(LABELS, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    for epoch in (0, 1):
        whole = _epoch(alone, epoch)
        shares = [_epoch(rank, epoch) for rank in ranks]
        assert [len(share) for share in shares] == [8, 8]
        assert shares[0] == whole[0::2] and shares[1] == whole[1::2]  # disjoint, together all
    assert _epoch(alone, 0) != _epoch(alone, 1)  # a new draw every epoch
    odd = [ClassBalancedSampler(LABELS[:15], seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    assert [len(list(s)) for s in odd] == [8, 8]  # 15 rounded up: every rank takes as many steps


def test_sampler_seed_defaults_to_seed_everythings() -> None:
    torch.manual_seed(7)
    a = _epoch(ClassBalancedSampler(LABELS), 0)
    torch.manual_seed(7)
    assert _epoch(ClassBalancedSampler(LABELS), 0) == a
    torch.manual_seed(8)
    assert _epoch(ClassBalancedSampler(LABELS), 0) != a


def test_loader_with_the_sampler_resumes_mid_epoch_with_the_same_batches() -> None:
    data = TensorDataset(torch.arange(16))

    def loader() -> ResumableDataLoader:
        made = make_loader(data, 3, True, 0, False, sampler=ClassBalancedSampler(LABELS, seed=1))
        assert isinstance(made, ResumableDataLoader)
        made.sampler.set_epoch(2)  # as Lightning does at the start of every epoch and on resuming
        return made

    whole = loader()
    batches = iter(whole)
    first = [next(batches)[0] for _ in range(2)]
    state = whole.state_dict()
    rest = [b[0] for b in batches]
    resumed = loader()
    resumed.load_state_dict(state)
    assert [b[0].tolist() for b in resumed] == [b.tolist() for b in rest]
    assert len(first) + len(rest) == 6
    drawn = torch.cat(first + rest).tolist()
    assert drawn == _epoch(ClassBalancedSampler(LABELS, seed=1), 2)


def test_only_a_shuffled_loader_takes_a_sampler() -> None:
    with pytest.raises(ValueError, match="only a shuffled loader takes one"):
        make_loader(
            TensorDataset(torch.arange(16)),
            3,
            False,
            0,
            False,
            sampler=ClassBalancedSampler(LABELS),
        )


def test_balanced_accuracy_is_the_mean_recall_over_batches_of_one_class() -> None:
    """6 images of class 0, all right; 2 of class 1, one right, and for the wrong one the true
    class comes second: acc1 7/8, balanced (6/6 + 1/2) / 2, acc5 1. Batches of one class each
    (an unshuffled, sorted val set), which once merged balanced_acc's counts with acc5's."""
    module = InceptionClassifier("inception_v3", num_classes=10, model_kwargs=TINY)
    metrics = module.metrics["val"]
    target = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    logits = torch.zeros(8, 10)
    logits[torch.arange(8), target] = 2.0
    logits[7, 3] = 3.0  # the last image: class 3 first, its true class 1 second
    for batch in (slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)):
        metrics.update(logits[batch], target[batch])
    values = {k: v.item() for k, v in metrics.compute().items()}
    assert values["val/acc1"] == pytest.approx(7 / 8)
    assert values["val/balanced_acc"] == pytest.approx(0.75)
    assert values["val/acc5"] == pytest.approx(1.0)


def test_folder_reports_class_counts_and_draws_by_class(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "lt"
    write_dataset(root, num_classes=3, image_size=32, num_samples=30, class_counts=[12, 6, 3])
    dm = ImageFolderDataModule(str(root), crop={"image_size": 32},
                               loader=LoaderOptions(4, 0, sampling="class_balanced"))  # fmt: skip
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    assert (
        "training images per class: circle 12, square 6, triangle 3 (21 in all; the largest "
        "class is 4.0x the smallest; sampling: class_balanced)"
    ) in caplog.text
    loader = dm.train_dataloader()
    assert isinstance(loader, ResumableDataLoader)
    assert isinstance(loader.sampler, ClassBalancedSampler)
    assert loader.sampler.class_counts == [12, 6, 3] and len(loader) == 5  # 21 draws, 4 a batch
    assert not isinstance(dm.val_dataloader().sampler, ClassBalancedSampler)
    shuffled = ImageFolderDataModule(str(root), crop={"image_size": 32}, loader=LoaderOptions(4, 0))
    shuffled.setup("fit")
    assert not isinstance(shuffled.train_dataloader().sampler, ClassBalancedSampler)


def test_per_class_accuracy_is_one_figure_of_each_classs_recall(
    tmp_path: Path, classifier, datamodule, trainer
) -> None:
    train = SyntheticDataset("train", 12, num_classes=3, image_size=75)
    val = SyntheticDataset("val", 9, num_classes=3, image_size=75)
    data = datamodule(train, val, batch_size=3)  # batches of one class each: val is sorted
    data.train_class_counts = [4, 4, 4]
    module = classifier(num_classes=3, sgd=0.05)
    dashboards = TensorBoardDashboards()
    logger = TensorBoardLogger(tmp_path, name="run", default_hp_metric=False)
    trainer(max_epochs=1, logger=logger, callbacks=[dashboards], num_sanity_val_steps=0).fit(
        module, datamodule=data
    )
    module.eval()
    with torch.no_grad():
        predicted = module(val.normalize(val.images)).argmax(dim=1)
    labels = torch.tensor(val.labels)
    by_hand = {
        name: (predicted[labels == c] == c).float().mean().item()
        for c, name in enumerate(val.classes)
    }
    assert dashboards.per_class == pytest.approx(by_hand)
    events = EventAccumulator(str(Path(logger.log_dir)), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["val/per_class_acc"]  # one card for every class
    assert len(events.Images("val/per_class_acc")) == 1
    balanced = events.Scalars("val/balanced_acc")[0].value
    assert balanced == pytest.approx(sum(by_hand.values()) / 3, abs=1e-6)


def test_class_weights_weigh_the_loss_by_inverse_class_size(
    tmp_path: Path, datamodule, trainer
) -> None:
    """Counts 12:3:1 (16 images): balanced weights 16 / (3 n_c) = 4/9, 16/9, 16/3; the weighted
    mean of a batch divides by the weights of its targets."""
    train = SyntheticDataset("train", 0, 3, 75, class_counts=[12, 3, 1])
    data = datamodule(train, batch_size=4)
    data.train_class_counts = [12, 3, 1]
    loss = LossOptions(label_smoothing=0.0, class_weights="balanced")
    module = InceptionClassifier("inception_v3", num_classes=3, model_kwargs=TINY, loss=loss)
    trainer(max_steps=1, limit_val_batches=0).fit(module, datamodule=data)
    weights = torch.tensor([4 / 9, 16 / 9, 16 / 3])
    torch.testing.assert_close(module._class_weights, weights)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = torch.tensor([0, 2])
    nll = -torch.log_softmax(logits, dim=1)[[0, 1], target]
    by_hand = (weights[0] * nll[0] + weights[2] * nll[1]) / (weights[0] + weights[2])
    torch.testing.assert_close(module.loss(logits, None, target)[0], by_hand)
    loss = LossOptions(class_weights="square_root")
    sqrt = InceptionClassifier("inception_v3", num_classes=3, model_kwargs=TINY, loss=loss)
    trainer(max_steps=1, limit_val_batches=0).fit(sqrt, datamodule=data)
    torch.testing.assert_close(sqrt._class_weights, weights.sqrt())


def test_class_weights_need_counted_classes(datamodule, trainer) -> None:
    train = SyntheticDataset("train", 8, 2, 75)
    loss = LossOptions(class_weights="balanced")
    module = InceptionClassifier("inception_v3", num_classes=2, model_kwargs=TINY, loss=loss)
    with pytest.raises(ValueError, match="class_weights=balanced needs the training images"):
        trainer(max_steps=1).fit(module, datamodule=datamodule(train))


@pytest.mark.parametrize("stop_after", [4, 5])
def test_balanced_run_stopped_and_resumed_draws_the_same_batches(
    tmp_path: Path, trainer, stop_after: int
) -> None:
    """The sampler under Lightning: a run stopped after its 4th step (its last checkpoint that of
    epoch 0's end, step 3) or its 5th (mid epoch 1), resumed from that checkpoint, draws the
    batches and ends with the weights of a run never stopped."""
    root = tmp_path / "lt"
    write_dataset(root, num_classes=3, image_size=47, num_samples=30, class_counts=[12, 6, 3])

    class Record(Callback):
        def __init__(self, stop_after: int | None = None) -> None:
            self.labels: dict[int, list[int]] = {}
            self.stop_after = stop_after

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.labels[trainer.global_step] = batch[1].tolist()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == self.stop_after:
                raise RuntimeError("stopped")  # the run ends here, its checkpoint written

    def fit(folder: str, record: Record, ckpt_path: Path | None = None) -> InceptionClassifier:
        torch.manual_seed(0)
        module = InceptionClassifier("inception_v3", num_classes=3, model_kwargs=TINY_47)
        crop = {"image_size": 47, "crop_pct": 1.0}
        loader = LoaderOptions(6, 0, sampling="class_balanced")
        data = ImageFolderDataModule(str(root), crop=crop, loader=loader)
        saving = ModelCheckpoint(dirpath=tmp_path / folder, every_n_train_steps=1, save_last=True)
        run = trainer(max_epochs=2, limit_val_batches=0, callbacks=[record, saving],
                      enable_checkpointing=True)  # fmt: skip
        run.fit(module, datamodule=data, ckpt_path=ckpt_path)
        return module

    whole = Record()
    straight = fit("whole", whole)
    assert sorted(whole.labels) == list(range(6))  # 21 draws: 3 batches of 6 an epoch
    with pytest.raises(RuntimeError, match="stopped"):
        fit("stopped", Record(stop_after=stop_after))
    resumed_record = Record()
    resumed = fit("resumed", resumed_record, ckpt_path=tmp_path / "stopped" / "last.ckpt")
    resumed_from = stop_after - 1  # the stopping step's own checkpoint was not written
    assert torch.load(tmp_path / "stopped" / "last.ckpt")["global_step"] == resumed_from
    assert resumed_record.labels == {k: whole.labels[k] for k in range(resumed_from, 6)}
    torch.testing.assert_close(resumed.model.state_dict(), straight.model.state_dict())


@pytest.mark.e2e
def test_small_data_recipe_composes_after_the_quickstart_on_a_long_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's command, shrunk: the quickstart then conf/small_data.yaml on a long-tailed
    folder written by make-dataset trains with class-balanced draws, and logs the balanced and
    per-class accuracies."""
    monkeypatch.chdir(tmp_path)
    main(["make-dataset", "--out", "lt", "--num_classes", "3", "--num_samples", "30",
          "--image_size", "47", "--long_tail", "[12, 3]"])  # fmt: skip
    with caplog.at_level(logging.INFO):
        main(["fit", "-c", str(CONF / "quickstart.yaml"), "-c", str(CONF / "small_data.yaml"),
              "--data.init_args.root", "lt", "--trainer.callbacks", "[]",
              "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
              "--cpu_recipe", "null", "--data.init_args.loader.batch_size", "4",
              "--model.model_kwargs.width", "0.0625"])  # fmt: skip
    assert (
        "training images per class: circle 12, square 6, triangle 3 (21 in all; the largest "
        "class is 4.0x the smallest; sampling: class_balanced)"
    ) in caplog.text
    run = tmp_path / "runs" / "quickstart" / "version_0"
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["val/per_class_acc"]
    assert len(events.Scalars("val/balanced_acc")) == 1
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["scheduler"]["init_args"]["T_max"] == 30
    assert config["model"]["loss"]["cutmix_alpha"] == config["model"]["loss"]["mixup_alpha"] == 0
    assert config["data"]["init_args"]["augment"]["policy"] == "none"
