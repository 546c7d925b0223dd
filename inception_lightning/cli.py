"""The `inception-lightning` console script: one command tree.

`fit`, `validate`, `test` and `predict` are LightningCLI's own subcommands (Lightning 2.x ships
no `lightning fit`, and the `lightning` command belongs to Lightning AI's cloud CLI). The
package's own commands (`commands.COMMANDS`) sit in the same tree: `--help` lists them all,
and each takes `-c FILE` and `--print_config`, with flags spelled as LightningCLI spells them.

`--ckpt_path` is checked before anything runs (one line for a truncated, foreign or unsafe
file), and `validate`, `test` and `predict` take the checkpoint's class names and preprocessing
as the data's defaults, so they evaluate the model on what it was trained on.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from jsonargparse.typing import Path_fr
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from inception_lightning._compat import (
    add_subcommand,
    build_cli_trainer,
    cli_trainer_parts,
    set_subcommand_help,
)
from inception_lightning.callbacks import LoggingStepProgressBar, TensorBoardDashboards
from inception_lightning.commands import COMMANDS
from inception_lightning.data.errors import DatasetError
from inception_lightning.models import InputTooSmallError
from inception_lightning.models.weights import CheckpointError
from inception_lightning.parser import InceptionArgumentParser
from inception_lightning.training import (
    Description,
    ExportError,
    InceptionClassifier,
    read_checkpoint,
    read_description,
)
from inception_lightning.training.cpu_recipe import choose_cpu_recipe

TRAINER_DEFAULTS = {
    # Claims its version_N folder atomically, so two runs started together never share one.
    "logger": {
        "class_path": "inception_lightning.training.ExclusiveTensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "inception"},
    },
    # Temp file beside the target, fsync, os.replace: a crash never truncates a checkpoint.
    "plugins": [{"class_path": "inception_lightning.training.AtomicCheckpointIO"}],
}

DESCRIPTION = "Train, watch and explain Inception-family image classifiers."
# One line each in `--help` (Lightning's are the first lines of the Trainer's docstrings).
LIGHTNING_COMMANDS = {
    "fit": "Train a model, validating it every epoch.",
    "validate": "Evaluate a model once on the validation set.",
    "test": "Evaluate a model once on the test set (one view, multi-crop, or an ensemble).",
    "predict": "Run a model on the data's predict set.",
}

# Errors about the user's input, raised while running: shown as one line, not a traceback.
USER_ERRORS = (
    CheckpointError,
    DatasetError,
    ExportError,
    FileNotFoundError,
    InputTooSmallError,
)
# Subcommands that evaluate a checkpoint rather than train it: the data follows the checkpoint.
EVALUATING = ("validate", "test", "predict")


class InceptionCLI(LightningCLI):
    """LightningCLI with `num_classes` linked from the data, a sync-free bar, an lr monitor,
    TensorBoard's hparams and custom-scalars tabs, and the package's own commands in its
    `--help`."""

    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        """Lightning's parser, with the package's commands listed beside fit ... predict."""
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)
        if add_subcommands:
            self.parser.description = DESCRIPTION
            for name, help in LIGHTNING_COMMANDS.items():
                set_subcommand_help(self.parser, name, help)
            for name, command in COMMANDS.items():
                add_subcommand(self.parser, name, command_parser(name), one_line_help(command))

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Lightning's parsing (with `cpu_recipe` composed where it applies), then a one-line
        check of `--ckpt_path` before Lightning reads it."""
        self._parse_with_cpu_recipe(parser, args)
        self.trained: Description | None = None
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and Path(path).is_file():  # "last", "best", URLs: Lightning resolves them
            self.trained = read_description(read_checkpoint(path), path)

    def before_instantiate_classes(self) -> None:
        """`validate` / `test` / `predict` a checkpoint: its classes and preprocessing are the
        data's defaults (a datamodule with `classes` and `preprocessing` arguments)."""
        subcommand = self.subcommand
        if subcommand not in EVALUATING or self.trained is None:
            return
        data = self.config[subcommand].get("data")
        init_args = data.get("init_args") if isinstance(data, Namespace) else None
        if init_args is None:
            return
        defaults = {"classes": self.trained.classes, "preprocessing": self.trained.preprocessing}
        chosen = {
            key: value
            for key, value in defaults.items()
            if value is not None and key in init_args and init_args[key] is None
        }
        if "preprocessing" in chosen and init_args.get("pretrained_cfg") is not None:
            del chosen["preprocessing"]  # the user named the preprocessing
        if chosen:
            update = {"data": {"class_path": data.class_path, "init_args": chosen}}
            self.config = self.parser.parse_object({subcommand: update}, self.config)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the datamodule's class count to the model and add the default callbacks."""
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "epoch"})
        parser.add_lightning_class_args(LoggingStepProgressBar, "progress_bar")
        parser.add_lightning_class_args(TensorBoardDashboards, "dashboards")
        parser.add_argument(
            "--cpu_recipe",
            type=Path_fr | None,
            default=None,
            help="a config file composed first (so any other value wins) when the run is on the "
            "CPU, sets no precision and the CPU has native bf16 (AMX or AVX512-BF16); in a "
            "config file, relative to it. The quickstart names conf/trainer/cpu.yaml",
        )

    def _parse_with_cpu_recipe(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Lightning's parse; where `cpu_recipe` applies, the same words again with the recipe
        composed first. A run with `cpu_recipe` says which precision it got, in one line."""
        if isinstance(args, dict | Namespace):
            super().parse_arguments(parser, args)
            return
        words = list(sys.argv[1:] if args is None else args)
        printing = _without_print_config(words) != words
        config = _parse(parser, _without_print_config(words), quietly=printing)
        if config is not None:
            self.config = config
            recipe = self._subcommand_config().get("cpu_recipe")
            if recipe is not None:
                words = self._compose_cpu_recipe(parser, words, recipe)
        if printing:  # jsonargparse prints the configuration the run gets, and exits
            parser.parse_args(words)

    def _compose_cpu_recipe(
        self, parser: LightningArgumentParser, words: list[str], recipe: Path_fr
    ) -> list[str]:
        """`words` with `-c RECIPE` after the subcommand where the recipe applies (parsed into
        `self.config`); logs the run's precision and why."""
        trainer = self._subcommand_config().trainer
        choice = choose_cpu_recipe(trainer.precision, trainer.accelerator)
        if choice.apply:
            subcommand = self.config.get("subcommand")
            at = words.index(subcommand) + 1 if subcommand else 0
            words = [*words[:at], "-c", recipe.absolute, *words[at:]]
            self.config = parser.parse_args(_without_print_config(words))
        config = self._subcommand_config()
        layout = "channels_last" if config.model.channels_last else "contiguous format"
        source = f" (composed {recipe})" if choice.apply else ""
        precision = config.trainer.precision or "32-true"
        rank_zero_info(f"precision {precision}, {layout}{source}: {choice.reason}")
        # Decided: the saved config.yaml records the outcome, not a path relative to here.
        config.cpu_recipe = None
        return words

    def _subcommand_config(self) -> Namespace:
        """The parsed configuration of the subcommand (all of it without subcommands)."""
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Lightning's, leaving the bar out under `trainer.enable_progress_bar: false` and the
        lr monitor out under `trainer.logger: false`."""
        # LightningCLI would pass both along regardless: the Trainer refuses a bar callback with
        # the bar disabled, and the monitor raises at the start of training without a logger.
        config, callbacks = cli_trainer_parts(self, **kwargs)
        if config.get("enable_progress_bar") is False:
            callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
        if config.get("logger") in (False, []):
            callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
        return build_cli_trainer(self, config, callbacks)

    def instantiate_classes(self) -> None:
        """Build the classes, turning bad values (model names, paths) into parser errors."""
        try:
            super().instantiate_classes()
        except (ValueError, FileNotFoundError) as err:
            self.parser.error(str(_user_error(err)))


def _user_error(err: BaseException) -> BaseException:
    """The user's error behind jsonargparse's wrapping of it, or `err` itself."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, USER_ERRORS):
            return cause
        cause = cause.__cause__ or cause.__context__
    return err


def _without_print_config(words: list[str]) -> list[str]:
    """`words` less `--print_config[=...]`, with which jsonargparse prints and exits."""
    return [word for word in words if not word.startswith("--print_config")]


def _parse(parser: ArgumentParser, words: list[str], quietly: bool) -> Namespace | None:
    """`parser.parse_args(words)`; quietly: None, and no message, where it fails.

    `--print_config` prints partial configurations (jsonargparse prints before it checks for
    required values), which a strict parse refuses: those print as they are.
    """
    if not quietly:
        return parser.parse_args(words)
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return parser.parse_args(words)
        except SystemExit:
            return None


def one_line_help(command: Callable[..., Any]) -> str:
    """The first line of a command's docstring: its one-line help."""
    return (command.__doc__ or "").strip().splitlines()[0]


def command_parser(name: str) -> InceptionArgumentParser:
    """The parser of one of the package's commands: its function's arguments, `-c`, and
    (from jsonargparse, with `-c`) `--print_config`."""
    command = COMMANDS[name]
    parser = InceptionArgumentParser(
        prog=f"inception-lightning {name}", description=one_line_help(command)
    )
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="a YAML file of flags")
    parser.add_function_arguments(command, as_group=False)
    return parser


def run_command(name: str, args: list[str]) -> None:
    """Parse `args` for the command `name` and run it; user errors end in one line."""
    parser = command_parser(name)
    config = parser.parse_args(args)
    try:
        made = parser.instantiate_classes(config)
    except ValueError as err:  # an options dataclass refused its values: say why, in a line
        while err.__cause__ is not None:
            err = err.__cause__
        parser.error(str(err))
    kwargs = {k: v for k, v in made.items() if k != "config"}
    try:
        made = COMMANDS[name](**kwargs)
    except (*USER_ERRORS, ValueError, KeyError, OSError) as err:
        # the arguments parsed: the user needs the one line, not the usage
        raise SystemExit(f"inception-lightning {name}: error: {err}") from None
    print(f"wrote {made}" if isinstance(made, Path) else made)


def lightning_main(argv: list[str] | None) -> None:
    """fit / validate / test / predict through LightningCLI (None: read sys.argv)."""
    try:
        InceptionCLI(
            InceptionClassifier,
            LightningDataModule,
            subclass_mode_data=True,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_kwargs={"overwrite": True},
            parser_class=InceptionArgumentParser,
            args=argv,
        )
    except USER_ERRORS as err:
        raise SystemExit(f"inception-lightning: error: {err}") from None


def main(argv: list[str] | None = None) -> None:
    """Entry point of `inception-lightning` and `python -m inception_lightning`."""
    words = sys.argv[1:] if argv is None else argv
    if words and words[0] in COMMANDS:
        run_command(words[0], list(words[1:]))
    else:
        lightning_main(argv)
