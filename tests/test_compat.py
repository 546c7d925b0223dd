"""Pins every private API `inception_lightning._compat` reads, so an upgrade fails here, by name."""

from __future__ import annotations

from pathlib import Path

import lightning
import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy

from inception_lightning import _compat
from inception_lightning.cli import InceptionCLI
from inception_lightning.training import InceptionClassifier

UPGRADE = f"Lightning {lightning.__version__} changed a private API that _compat.%s relies on: %s"


def test_writes_logs_reads_the_logger_connector() -> None:
    trainer = Trainer(logger=False, log_every_n_steps=1)
    assert hasattr(trainer, "_logger_connector"), UPGRADE % (
        "writes_logs",
        "trainer._logger_connector",
    )
    assert _compat.writes_logs(trainer) in (True, False)


def test_local_paths_are_told_from_remote_ones() -> None:
    assert _compat.is_local_path("/tmp/run")
    assert not _compat.is_local_path("s3://bucket/run")


def test_callback_state_keys_carry_their_identity() -> None:
    key = _compat.callback_state_key(ModelCheckpoint(), threshold=0.9)
    assert "ModelCheckpoint" in key and "0.9" in key, UPGRADE % ("callback_state_key", key)


def test_ema_state_lives_where_inception_ema_reads_it() -> None:
    fresh = EMAWeightAveraging()
    missing = [name for name in _compat.EMA_STATE if not hasattr(fresh, name)]
    assert not missing, UPGRADE % ("EMA_STATE", f"EMAWeightAveraging has no {missing}")


def test_cli_trainer_parts(tmp_path: pytest.TempPathFactory) -> None:
    args = ["--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]
    cli = InceptionCLI(InceptionClassifier, LightningDataModule, subclass_mode_data=True, args=[
        "--data", "inception_lightning.data.SyntheticDataModule", *args
    ], run=False)  # fmt: skip
    config, callbacks = _compat.cli_trainer_parts(cli)
    assert config["logger"] is False, UPGRADE % ("cli_trainer_parts", "LightningCLI._get")
    assert any(type(cb).__name__ == "LoggingStepProgressBar" for cb in callbacks)
    assert isinstance(_compat.build_cli_trainer(cli, config, callbacks), Trainer)


def test_the_package_commands_join_lightnings_subcommands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):  # add_subcommand runs while the parser is set up
        InceptionCLI(InceptionClassifier, LightningDataModule, args=["--help"])
    assert "make-dataset" in capsys.readouterr().out, UPGRADE % ("add_subcommand", "jsonargparse")


def test_subcommand_help_can_be_replaced(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        InceptionCLI(InceptionClassifier, LightningDataModule, args=["--help"])
    out = capsys.readouterr().out
    expected = "Evaluate a model once on the test set"
    assert expected in out, UPGRADE % ("set_subcommand_help", "jsonargparse's _choices_actions")


def test_find_unused_parameters_sets_what_the_named_ddp_strategy_sets() -> None:
    strategy = DDPStrategy()
    _compat.find_unused_parameters(strategy)
    named = DDPStrategy(find_unused_parameters=True)
    assert strategy._ddp_kwargs == named._ddp_kwargs, UPGRADE % (
        "find_unused_parameters",
        "DDPStrategy._ddp_kwargs",
    )


def test_the_default_store_is_the_process_groups() -> None:
    torch.distributed.init_process_group(
        "gloo", store=torch.distributed.HashStore(), rank=0, world_size=1
    )
    try:
        store = _compat.default_store()
        store.set("fence", b"done")  # under the group's prefix, in the store the group was given
        assert store.check(["fence"]) and store.get("fence") == b"done", UPGRADE.replace(
            "Lightning", "torch"
        ) % ("default_store", "torch.distributed.distributed_c10d._get_default_store")
    finally:
        torch.distributed.destroy_process_group()


def test_a_subcommands_parser_is_the_one_that_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # InceptionCLI reports a missing --ckpt_path through `subcommand_parser(cli, "fit")`
    with pytest.raises(SystemExit):
        InceptionCLI(InceptionClassifier, LightningDataModule, subclass_mode_data=True, args=[
            "fit", "--data", "inception_lightning.data.SyntheticDataModule",
            "--ckpt_path", str(tmp_path / "nope.ckpt"),
        ])  # fmt: skip
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.split(maxsplit=1)[1].startswith("fit: error: ckpt_path:"), UPGRADE % (
        "subcommand_parser",
        f"LightningCLI._parser: {line}",
    )
