"""Self-describing checkpoints, and one line for every unusable one at every entry point."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import TINY, write_image, write_tree
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from inception_lightning import create_model
from inception_lightning.callbacks import InceptionEMA
from inception_lightning.cli import InceptionCLI, main
from inception_lightning.data import SyntheticDataModule, synthetic_classes
from inception_lightning.models.options import ModelOptions
from inception_lightning.training import (
    InceptionClassifier,
    LossOptions,
    OptimOptions,
    load_network,
)
from inception_lightning.training.checkpoints import (
    DESCRIPTION_KEY,
    package_version,
    read_checkpoint,
    read_description,
    upgrade_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
CLASSES = synthetic_classes(4)
# every option is recorded, the defaults included, so the file alone rebuilds the network
MODEL_ARGS = {"num_classes": 4, **ModelOptions.of(TINY).as_kwargs()}
DATA = {"num_classes": 4, "image_size": 75, "num_samples": 24, "loader": {"batch_size": 8}}


def _fit(root: Path, ema: bool) -> Path:
    """Fit the tiny v3 for 2 steps on the built-in dataset; returns its last.ckpt."""
    torch.manual_seed(0)
    callbacks = [ModelCheckpoint(dirpath=root, save_last=True)] + ([InceptionEMA()] if ema else [])
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, limit_val_batches=1, num_sanity_val_steps=0,
        logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
        default_root_dir=root,
    )  # fmt: skip
    trainer.fit(InceptionClassifier(num_classes=4, model_kwargs=TINY), SyntheticDataModule(**DATA))
    return root / "last.ckpt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the tiny v3 trained with EMA on 4 classes of the built-in dataset."""
    return _fit(tmp_path_factory.mktemp("trained"), ema=True)


def test_every_checkpoint_describes_itself_in_plain_values(trained: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(trained, map_location="cpu", weights_only=True)
    assert checkpoint[DESCRIPTION_KEY] == {
        "model": "inception_v3",
        "model_args": MODEL_ARGS,
        "weights": "ema",
        "classes": CLASSES,
        "preprocessing": {
            "image_size": 75, "crop_pct": 1.0, "interpolation": "bicubic",
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
        },
        "version": package_version(),
    }  # fmt: skip
    raw = torch.load(_fit(tmp_path, ema=False), map_location="cpu", weights_only=True)
    assert raw[DESCRIPTION_KEY]["weights"] == "raw"
    assert "current_model_state" not in raw


# The hyperparameters an older version saved (LightningCLI's record of the module's arguments):
# flat names, the dead test_crops / test_crop_size, the stem as a string.
OLD_HPARAMS = {
    "_instantiator": "lightning.pytorch.cli.instantiate_module",
    "model": "inception_v3",
    "num_classes": 4,
    "model_kwargs": {**MODEL_ARGS, "num_classes": None, "stem": "299"},
    "label_smoothing": 0.2,
    "aux_weight": 0.3,
    "scheduler_interval": "step",
    "lr_reference_batch_size": None,
    "backbone_lr_scale": 0.5,
    "channels_last": False,
    "compile_model": False,
    "test_crops": 1,
    "test_crop_size": 299,
}
del OLD_HPARAMS["model_kwargs"]["num_classes"]
OLD_DATA_HPARAMS = {
    "num_classes": 4, "image_size": 75, "num_samples": 24, "val_fraction": 0.1,
    "difficulty": 0.25, "seed": 0, "batch_size": 8, "num_workers": 0, "pin_memory": None,
    "test_samples": None, "test_crops": 1, "classes": None,
}  # fmt: skip


def _old_checkpoint(trained: Path, path: Path) -> Path:
    """`trained` as an older version wrote it: flat hyperparameters, no description."""
    checkpoint = torch.load(trained, map_location="cpu", weights_only=True)
    del checkpoint[DESCRIPTION_KEY]
    checkpoint["hyper_parameters"] = dict(OLD_HPARAMS)
    checkpoint["datamodule_hyper_parameters"] = dict(OLD_DATA_HPARAMS)
    torch.save(checkpoint, path)
    return path


def test_the_upgrade_moves_flat_hyperparameters_into_their_groups(trained: Path) -> None:
    checkpoint = {
        "hyper_parameters": dict(OLD_HPARAMS, test_crops=12),
        "datamodule_hyper_parameters": {"root": "d", "val_fraction": 0.2, "split_seed": 3,
                                        "augment": False, "batch_size": 4, "image_size": 75,
                                        "boxes_file": "b.json", "classes": None},
        DESCRIPTION_KEY: {"model": "inception_v3", "model_args": {"stem": "79"}},
    }  # fmt: skip
    with pytest.warns(UserWarning, match=r"old\.ckpt was saved with the module's test_crops 12.*"
                      r"--data\.init_args\.test_crops 12"):  # fmt: skip
        upgrade_checkpoint(checkpoint, "old.ckpt")
    assert checkpoint["hyper_parameters"] == {
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
        "model": "inception_v3",
        "num_classes": 4,
        "model_kwargs": {**OLD_HPARAMS["model_kwargs"], "stem": 299},
        "loss": {"label_smoothing": 0.2, "aux_weight": 0.3},
        "optim": {"backbone_lr_scale": 0.5, "lr_reference_batch_size": None,
                  "scheduler_interval": "step"},
        "compute": {"channels_last": False, "compile": False},
    }  # fmt: skip
    assert checkpoint["datamodule_hyper_parameters"] == {
        "root": "d", "classes": None, "loader": {"batch_size": 4}, "crop": {"image_size": 75},
        "split": {"val_fraction": 0.2, "seed": 3}, "augment": {"enabled": False},
        "files": {"boxes_file": "b.json"},
    }  # fmt: skip
    assert checkpoint[DESCRIPTION_KEY]["model_args"] == {"stem": 79}
    today = torch.load(trained, map_location="cpu", weights_only=True)
    described = ("hyper_parameters", "datamodule_hyper_parameters", DESCRIPTION_KEY)
    before = copy.deepcopy({key: today[key] for key in described})
    upgrade_checkpoint(today)
    assert {key: today[key] for key in described} == before  # today's form: left as it is
    augment = {"enabled": True, "policy": "trivialaugment", "erasing": 0.25}
    folder = {"_class_path": "inception_lightning.data.ImageFolderDataModule", "augment": augment}
    assert upgrade_checkpoint({"datamodule_hyper_parameters": copy.deepcopy(folder)}) == {
        "datamodule_hyper_parameters": folder  # the augment group is not the old flag
    }


@pytest.mark.e2e  # the console script's validate, fit (resumed), report and export
def test_an_older_checkpoint_loads_everywhere_with_a_warning_naming_what_it_lacks(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where validate writes its config
    old = _old_checkpoint(trained, tmp_path / "old.ckpt")

    with pytest.warns(
        UserWarning, match=r"old\.ckpt does not say its class names or preprocessing"
    ):
        loaded = load_network(old)
    description = loaded.description
    assert (description.model, description.weights) == ("inception_v3", "ema")
    assert description.model_args == MODEL_ARGS
    assert description.classes is None and description.preprocessing is None
    torch.testing.assert_close(
        loaded.network.state_dict(), load_network(trained).network.state_dict()
    )
    data = SyntheticDataModule(**loaded.checkpoint["datamodule_hyper_parameters"])
    assert data.batch_size == 8 and data.loader_options.num_workers == 0

    module = InceptionClassifier.load_from_checkpoint(old, weights_only=True)
    assert module.loss_options == LossOptions(label_smoothing=0.2, aux_weight=0.3)
    assert module.optim_options == OptimOptions(0.5, None, "step")
    assert module.model.stem == 299
    torch.testing.assert_close(module.state_dict(), InceptionClassifier.load_from_checkpoint(
        trained, weights_only=True).state_dict())  # fmt: skip

    # the console script evaluates it with the checkpoint's hyperparameters, and resumes it;
    # the data's classes and preprocessing are used
    config = {"trainer": {"accelerator": "cpu", "logger": False, "enable_progress_bar": False,
                          "enable_checkpointing": False, "limit_train_batches": 1,
                          "limit_val_batches": 1},
              "data": {"class_path": "inception_lightning.data.SyntheticDataModule",
                       "init_args": {**DATA, "num_samples": 16}}}  # fmt: skip
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(config))
    with pytest.warns(UserWarning, match=r"old\.ckpt does not say"):
        cli = InceptionCLI(
            InceptionClassifier, LightningDataModule, subclass_mode_data=True,
            args=["validate", "-c", str(tmp_path / "data.yaml"), "--ckpt_path", str(old)],
        )  # fmt: skip
    assert "val_ema/acc1" in cli.trainer.callback_metrics
    assert cli.model.loss_options == LossOptions(label_smoothing=0.2, aux_weight=0.3)
    with pytest.warns(UserWarning, match=r"old\.ckpt does not say"):
        cli = InceptionCLI(
            InceptionClassifier, LightningDataModule, subclass_mode_data=True,
            args=["fit", "-c", str(tmp_path / "data.yaml"), "--ckpt_path", str(old),
                  "--trainer.max_epochs", "2"], save_config_kwargs={"overwrite": True},
        )  # fmt: skip
    # the 2 steps it was trained for, and one more: the second epoch, limited to one batch
    assert cli.trainer.current_epoch == 2 and cli.trainer.global_step == 2 + 1
    assert cli.model.optim_options.scheduler_interval == "step"

    # and the package's commands read it
    images = write_tree(tmp_path / "images", classes=CLASSES, splits=("val",), n=1, size=(75, 75))
    with pytest.warns(UserWarning, match=r"old\.ckpt does not say"):
        main(["report", "--ckpt_path", str(old), "--data", str(images), "--out", "report",
              "--per_class", "1", "--method", "gradcam", "--sanity.samples", "0"])  # fmt: skip
    assert (tmp_path / "report" / "index.html").is_file()
    with pytest.warns(UserWarning, match=r"old\.ckpt does not say"):
        main(["export", "--ckpt_path", str(old), "--out", "model.pt"])
    torch.testing.assert_close(torch.load("model.pt"), loaded.network.state_dict())


def test_a_plain_state_dict_is_not_taken_for_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(create_model("inception_v3", num_classes=4, **TINY).state_dict(), path)
    with pytest.raises(ValueError, match=r"model\.pt is not a training checkpoint: .*plain state"):
        read_checkpoint(path)


class _Payload:
    """Any object that weights_only loading must refuse."""


def _bad_checkpoints(trained: Path, root: Path) -> dict[str, Path]:
    """One file per way a checkpoint can be unusable, derived from a good one."""
    data = trained.read_bytes()
    good = torch.load(trained, map_location="cpu", weights_only=True)
    files = {"truncated": root / "truncated.ckpt", "not_a_checkpoint": root / "picture.ckpt"}
    files["truncated"].write_bytes(data[: len(data) // 2])
    write_image(root / "picture.png").rename(files["not_a_checkpoint"])

    files["unsafe_pickle"] = root / "unsafe.ckpt"
    torch.save({**good, "extra": _Payload()}, files["unsafe_pickle"])

    # the weights of another network than the one it describes (inception_v3): inception_v4's
    v4 = create_model("inception_v4", num_classes=4, **TINY).state_dict()
    other = {"model." + k: v for k, v in v4.items()}
    files["another_architecture"] = root / "architecture.ckpt"
    torch.save(
        {**good, "state_dict": other, "current_model_state": other}, files["another_architecture"]
    )

    # a classifier for 7 classes where the checkpoint and the data say 4
    def seven(state: dict) -> dict:
        width = state["model.head.fc.weight"].shape[1]
        head = {"model.head.fc.weight": torch.zeros(7, width), "model.head.fc.bias": torch.zeros(7)}
        return {**state, **head}

    files["another_class_count"] = root / "classes.ckpt"
    torch.save(
        {**good, "state_dict": seven(good["state_dict"]),
         "current_model_state": seven(good["current_model_state"])},
        files["another_class_count"],
    )  # fmt: skip
    return files


# what each error must say besides the file's name: the problem and the fix
EXPECTED = {
    "truncated": ("truncated or corrupt", "copy it again"),
    "not_a_checkpoint": ("not a checkpoint", "pass the .ckpt"),
    "unsafe_pickle": ("arbitrary unpickling", "re-save it"),
    "another_architecture": ("architecture", "pass a checkpoint"),
    "another_class_count": ("classes", "7 classes"),
}
ENTRY_POINTS = ["fit", "validate", "test", "predict", "report", "export"]


@pytest.fixture(scope="module")
def bad_checkpoints(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _bad_checkpoints(trained, tmp_path_factory.mktemp("bad"))


def _arguments(entry: str, ckpt: Path, tmp_path: Path) -> list[str]:
    if entry in ("fit", "validate", "test"):
        config = {
            "trainer": {"accelerator": "cpu", "max_steps": 1, "logger": False,
                        "enable_checkpointing": False, "enable_progress_bar": False},
            "model": {"model": "inception_v3", "model_kwargs": TINY},
            "data": {"class_path": "inception_lightning.data.SyntheticDataModule",
                     "init_args": {**DATA, "num_samples": 16}},
        }  # fmt: skip
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(config))
        return [entry, "-c", str(path), "--ckpt_path", str(ckpt)]
    images = write_tree(tmp_path / "images", classes=CLASSES[:2], splits=("val",), n=1)
    if entry == "predict":
        config = str(ROOT / "conf/predict.yaml")
        return [entry, "-c", config, "--ckpt_path", str(ckpt), "--data.root", str(images / "val")]
    if entry == "report":
        return [
            entry,
            "--ckpt_path",
            str(ckpt),
            "--data",
            str(images),
            "--out",
            str(tmp_path / "r"),
        ]
    return [entry, "--ckpt_path", str(ckpt), "--out", str(tmp_path / "model.pt")]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", list(EXPECTED))
def test_every_unusable_checkpoint_gets_one_line_at_every_entry_point(
    entry: str,
    case: str,
    bad_checkpoints: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # anything a run would write stays here
    ckpt = bad_checkpoints[case]
    with pytest.raises(SystemExit) as exit_info:
        main(_arguments(entry, ckpt, tmp_path))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert "\n" not in message and message.startswith("inception-lightning"), message
    problem, fix = EXPECTED[case]
    assert ckpt.name in message and problem in message and fix in message, message
    assert not (tmp_path / "predictions.csv").exists() and not (tmp_path / "model.pt").exists()


def test_read_description_of_the_trained_checkpoint_needs_no_warning(
    trained: Path, recwarn: pytest.WarningsRecorder
) -> None:
    description = read_description(read_checkpoint(trained), trained)
    assert description.classes == CLASSES and description.num_classes == 4
    assert not [w for w in recwarn if "does not say" in str(w.message)]


def test_a_subset_of_the_classes_is_mapped_by_name_and_other_classes_are_refused(
    trained: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    subset = [CLASSES[3], CLASSES[1]]  # two of the four, in another order
    folder = write_tree(tmp_path / "subset", subset, ("train", "val"), n=2, size=(75, 75))
    cli = InceptionCLI(
        InceptionClassifier, LightningDataModule, subclass_mode_data=True,
        args=["validate", "--data", "inception_lightning.data.ImageFolderDataModule",
              "--data.root", str(folder), "--data.loader.num_workers", "0",
              "--ckpt_path", str(trained),
              "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"],
    )  # fmt: skip
    assert cli.datamodule.classes == CLASSES and cli.model.hparams.num_classes == 4
    assert "val_ema/acc1" in cli.trainer.callback_metrics
    names = [CLASSES[label] for label in cli.datamodule.val_dataset.labels]
    assert names == [path.parent.name for path in map(cli.datamodule.val_dataset.path, range(4))]
    assert sorted(set(names)) == sorted(subset)

    # the class mapping alone: no sanity checks (their classes are the maps')
    main(["report", "--ckpt_path", str(trained), "--data", str(folder), "--out", "report",
          "--per_class", "1", "--sanity.samples", "0"])  # fmt: skip
    summary = json.loads((tmp_path / "report/summary.json").read_text())
    assert all(sorted(m["per_class"]) == sorted(subset) for m in summary["methods"])
    assert all(image["true"] in subset for image in summary["images"])

    strange = write_tree(tmp_path / "strange", [CLASSES[0], "zebra"], ("val",), n=1)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--ckpt_path", str(trained), "--data", str(strange), "--out", "r2"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "['zebra'] that the model does not know" in message and "\n" not in message
