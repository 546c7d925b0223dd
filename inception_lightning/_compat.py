"""Every private Lightning API the package uses, in one place.

Each function names what it reads and why no public API does the same. `tests/test_compat.py`
pins them all, so a Lightning upgrade that removes one fails there, with a message naming it,
rather than somewhere deep in a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from jsonargparse import ArgumentParser
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.strategies import DDPStrategy

__all__ = [
    "EMA_STATE",
    "add_subcommand",
    "build_cli_trainer",
    "callback_state_key",
    "cli_trainer_parts",
    "find_unused_parameters",
    "is_local_path",
    "merge_checkpoint_hparams",
    "set_subcommand_help",
    "writes_logs",
]

# The attributes `EMAWeightAveraging` keeps its state in, which `InceptionEMA` (a subclass)
# reads and sets: the averaged model, the device and buffer options it was given, and the step
# of the last update.
EMA_STATE = ("_average_model", "_device", "_use_buffers", "_latest_update_step")


def writes_logs(trainer: pl.Trainer) -> bool:
    """Whether the current (or, from `on_train_batch_start`, the coming) step writes logs.

    The exact test Lightning applies before it reads logged values; no public property has it.
    """
    return trainer._logger_connector.should_update_logs


def is_local_path(path: str | Any) -> bool:
    """Whether `path` is on the local filesystem (not `s3://...` and the like)."""
    return _is_local_file_protocol(path)


def callback_state_key(callback: Callback, **identity: Any) -> str:
    """A checkpoint key for a callback that may appear twice with different settings."""
    return callback._generate_state_key(**identity)


def cli_trainer_parts(cli: LightningCLI, **overrides: Any) -> tuple[dict[str, Any], list[Any]]:
    """The trainer's configuration and the CLI's own callbacks, as `instantiate_trainer` reads them.

    `LightningCLI.instantiate_trainer` takes them through private helpers and passes them on
    unfiltered; `InceptionCLI` filters the callbacks before building the trainer.
    """
    config = {**cli._get(cli.config_init, "trainer", default={}), **overrides}
    keys = cli._parser(cli.subcommand).callback_keys
    return config, [cli._get(cli.config_init, key) for key in keys]


def build_cli_trainer(
    cli: LightningCLI, config: dict[str, Any], callbacks: list[Any]
) -> pl.Trainer:
    """LightningCLI's own last step of `instantiate_trainer` (adds the config-saving callback)."""
    return cli._instantiate_trainer(config, callbacks)


def merge_checkpoint_hparams(cli: LightningCLI, hparams: Mapping[str, Any]) -> None:
    """Merge a checkpoint's module hyperparameters into the CLI's config for its subcommand.

    What `LightningCLI._parse_ckpt_path` does (called right after parsing, for `--ckpt_path`)
    with the hyperparameters it reads from the file as saved; `InceptionCLI` overrides it to give
    them upgraded (`checkpoints.upgrade_checkpoint`), as an older version's names do not parse.
    """
    hparams = {k: v for k, v in hparams.items() if k != "_instantiator"}
    if not hparams:
        return
    if "_class_path" in hparams:
        hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
    update = {cli.config.subcommand: {"model": hparams}}
    cli.config = cli.parser.parse_object(update, cli.config)


def add_subcommand(parser: ArgumentParser, name: str, subparser: ArgumentParser, help: str) -> None:
    """Add one more subcommand to a parser whose subcommands LightningCLI has added.

    jsonargparse allows one `add_subcommands()` per parser, which LightningCLI calls without
    keeping the returned action; the parser holds it privately.
    """
    parser._subcommands_action.add_subcommand(name, subparser, help=help)


def set_subcommand_help(parser: ArgumentParser, name: str, help: str) -> None:
    """Replace the one-line help of a subcommand LightningCLI has added, and its description.

    LightningCLI takes the first line of the Trainer method's docstring, which for `test` and
    `predict` stops mid-sentence; the help is kept on a pseudo-action the parser holds privately.
    """
    action = parser._subcommands_action
    for choice in action._choices_actions:
        if choice.dest == name:
            choice.help = help
    action.choices[name].description = help


def find_unused_parameters(strategy: DDPStrategy) -> None:
    """Make `strategy` wrap the model with `DistributedDataParallel(find_unused_parameters=True)`.

    What `strategy="ddp_find_unused_parameters_true"` does, for a strategy already built from a
    config (`FineTuning` needs it); the strategy keeps DDP's arguments privately until it wraps
    the model after the setup hooks.
    """
    strategy._ddp_kwargs["find_unused_parameters"] = True
