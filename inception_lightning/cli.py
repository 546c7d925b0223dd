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

import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from jsonargparse import ActionConfigFile, Namespace
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from inception_lightning._compat import (
    add_subcommand,
    build_cli_trainer,
    cli_trainer_parts,
    merge_checkpoint_hparams,
    set_subcommand_help,
)
from inception_lightning.callbacks import LoggingStepProgressBar, TensorBoardDashboards
from inception_lightning.commands import COMMANDS
from inception_lightning.data.errors import DatasetError
from inception_lightning.models import InputTooSmallError
from inception_lightning.models.weights import CheckpointError
from inception_lightning.parser import InceptionArgumentParser
from inception_lightning.recipes import RecipeOrConfigFile, recipe_names
from inception_lightning.training import (
    Description,
    ExportError,
    InceptionClassifier,
    NetworkNotFoundError,
    read_checkpoint,
    read_description,
)
from inception_lightning.training.checkpoints import HPARAMS_KEY

TRAINER_DEFAULTS = {
    # Claims its version_N folder atomically, so two runs started together never share one.
    "logger": {
        "class_path": "inception_lightning.training.ExclusiveTensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "inception"},
    },
    # Temp file beside the target, fsync, os.replace: a crash never truncates a checkpoint.
    "plugins": [{"class_path": "inception_lightning.training.AtomicCheckpointIO"}],
}

PROG = "inception-lightning"
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
    NetworkNotFoundError,
)
# Subcommands that evaluate a checkpoint rather than train it: the data follows the checkpoint.
EVALUATING = ("validate", "test", "predict")


class InceptionCLI(LightningCLI):
    """LightningCLI with `num_classes` linked from the data, a sync-free bar, an lr monitor,
    TensorBoard's hparams and custom-scalars tabs, and the package's own commands in its
    `--help`."""

    def __init__(
        self,
        *args: Any,
        parser_class: type[InceptionArgumentParser] = InceptionArgumentParser,
        **kwargs: Any,
    ) -> None:
        """LightningCLI's, parsing with `InceptionArgumentParser` (one-line errors, cpu_recipe)."""
        super().__init__(*args, parser_class=parser_class, **kwargs)

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

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Lightning's parser, whose `-c` also takes a shipped recipe by name."""
        kwargs.setdefault("dump_header", [f"lightning.pytorch=={pl.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument(
            "-c",
            "--config",
            action=RecipeOrConfigFile,
            help="a YAML file of settings (repeat -c to compose), or a shipped recipe by name: "
            + ", ".join(recipe_names()),
        )
        return parser

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Lightning's parsing (a subcommand's parser composes its `cpu_recipe`), then a
        one-line check of `--ckpt_path` before Lightning reads it."""
        super().parse_arguments(parser, args)
        self.trained: Description | None = None
        self.trained_hparams: dict[str, Any] = {}
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and Path(path).is_file():  # "last", "best", URLs: Lightning resolves them
            checkpoint = read_checkpoint(path)  # upgraded to today's names
            self.trained = read_description(checkpoint, path)
            self.trained_hparams = dict(checkpoint.get(HPARAMS_KEY) or {})

    def _parse_ckpt_path(self) -> None:
        """Lightning's merge of the `--ckpt_path` checkpoint's hyperparameters into the config,
        given them upgraded: Lightning reads the file's as saved, which an older version named
        otherwise (`checkpoints.upgrade_checkpoint`)."""
        if self.trained_hparams:
            merge_checkpoint_hparams(self, self.trained_hparams)

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
        if parser is not self.parser:  # a subcommand's: composed while the root parses
            parser.add_cpu_recipe_argument()

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


def one_line_help(command: Callable[..., Any]) -> str:
    """The first line of a command's docstring: its one-line help."""
    return (command.__doc__ or "").strip().splitlines()[0]


def command_parser(name: str) -> InceptionArgumentParser:
    """The parser of one of the package's commands: its function's arguments, `-c`, and
    (from jsonargparse, with `-c`) `--print_config`."""
    command = COMMANDS[name]
    parser = InceptionArgumentParser(prog=f"{PROG} {name}", description=one_line_help(command))
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="a YAML file of flags")
    parser.add_function_arguments(command, as_group=False)
    return parser


def run_command(name: str, args: list[str]) -> None:
    """Parse `args` for the command `name` and run it; user errors end in one line."""
    parser = command_parser(name)
    config = parser.parse_args(args)
    kwargs = {k: v for k, v in parser.instantiate_classes(config).items() if k != "config"}
    try:
        made = COMMANDS[name](**kwargs)
    except (*USER_ERRORS, ValueError, KeyError, OSError) as err:
        # the arguments parsed: the user needs the one line, not the usage
        raise SystemExit(f"{PROG} {name}: error: {err}") from None
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
            parser_kwargs={"prog": PROG, "version": version("inception-lightning")},
            args=argv,
        )
    except USER_ERRORS as err:
        raise SystemExit(f"{PROG}: error: {err}") from None


class _FitCLI(InceptionCLI):
    """`InceptionCLI` with `fit` its only subcommand: building every subcommand's parser costs
    more than a short sweep trial's training."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's `fit` alone."""
        return {"fit": LightningCLI.subcommands()["fit"]}

    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        """Lightning's parser, without the package's commands."""
        LightningCLI.setup_parser(self, add_subcommands, main_kwargs, subparser_kwargs)


def fit_in_process(words: list[str], callbacks: list[Callback]) -> Trainer:
    """`inception-lightning fit WORDS` in this process, with `callbacks` added; its trainer.

    The callbacks are objects, not configs (a sweep's pruning callback holds its trial).
    """
    try:
        cli = _FitCLI(
            InceptionClassifier,
            LightningDataModule,
            subclass_mode_data=True,
            trainer_defaults={**TRAINER_DEFAULTS, "callbacks": callbacks},
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"prog": PROG},
            args=["fit", *words],
        )
    except USER_ERRORS as err:
        raise SystemExit(f"{PROG}: error: {err}") from None
    return cli.trainer


def main(argv: list[str] | None = None) -> None:
    """Entry point of `inception-lightning` and `python -m inception_lightning`."""
    words = sys.argv[1:] if argv is None else argv
    if words and words[0] in COMMANDS:
        run_command(words[0], list(words[1:]))
    else:
        lightning_main(argv)
