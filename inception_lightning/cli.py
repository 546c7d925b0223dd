"""The `inception-lightning` console script: LightningCLI plus summary/make-dataset/report.

`fit`, `validate`, `test` and `predict` are LightningCLI's own subcommands (Lightning 2.x ships
no `lightning fit`, and the `lightning` command belongs to Lightning AI's cloud CLI).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from inception_lightning.data.errors import DatasetError
from inception_lightning.module import CheckpointMismatchError, InceptionClassifier
from inception_lightning.net import InputTooSmallError
from inception_lightning.progress import LoggingStepProgressBar
from inception_lightning.registry import create_model, list_models
from inception_lightning.summary import format_summary, summarize
from inception_lightning.weights import UnsafeCheckpointError

TRAINER_DEFAULTS = {
    # Claims its version_N folder atomically, so two runs started together never share one.
    "logger": {
        "class_path": "inception_lightning.loggers.ExclusiveTensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "inception"},
    },
    # Temp file beside the target, fsync, os.replace: a crash never truncates a checkpoint.
    "plugins": [{"class_path": "inception_lightning.checkpoint_io.AtomicCheckpointIO"}],
}


class InceptionCLI(LightningCLI):
    """LightningCLI with `num_classes` linked from the data, a sync-free bar and an lr monitor."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the datamodule's class count to the model and add the default callbacks."""
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "epoch"})
        parser.add_lightning_class_args(LoggingStepProgressBar, "progress_bar")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Lightning's, leaving the bar out under `trainer.enable_progress_bar: false`."""
        # LightningCLI would pass the bar along regardless, and the Trainer refuses a bar
        # callback with the bar disabled; `_get`, `_parser` and `_instantiate_trainer` are
        # the steps of LightningCLI.instantiate_trainer
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        keys = self._parser(self.subcommand).callback_keys
        callbacks = [self._get(self.config_init, key) for key in keys]
        if config.get("enable_progress_bar") is False:
            callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
        return self._instantiate_trainer(config, callbacks)

    def instantiate_classes(self) -> None:
        """Build the classes, turning bad values (model names, paths) into parser errors."""
        try:
            super().instantiate_classes()
        except (ValueError, FileNotFoundError) as err:
            self.parser.error(str(err))


# Errors about the user's input, raised while running: shown as one line, not a traceback.
USER_ERRORS = (
    CheckpointMismatchError,
    DatasetError,
    FileNotFoundError,
    InputTooSmallError,
    UnsafeCheckpointError,
)


def lightning_main(argv: list[str] | None) -> None:
    """fit / validate / test / predict through LightningCLI (None: read sys.argv)."""
    try:
        _run_lightning_cli(argv)
    except USER_ERRORS as err:
        raise SystemExit(f"inception-lightning: error: {err}") from None


def _run_lightning_cli(argv: list[str] | None) -> None:
    InceptionCLI(
        InceptionClassifier,
        LightningDataModule,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        args=argv,
    )


def summary_main(argv: list[str]) -> None:
    """`inception-lightning summary MODEL [--input-size N]`: the per-stage table."""
    parser = argparse.ArgumentParser(
        prog="inception-lightning summary",
        description="Per-stage output size, channels, parameters and multiply-adds.",
    )
    parser.add_argument("model", choices=list_models())
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--stem", default="299", help="299, or a low-resolution stem: 151, 79")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--aux-head", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args(argv)
    try:
        model = create_model(
            args.model,
            num_classes=args.num_classes,
            aux_head=args.aux_head,
            width=args.width,
            stem=args.stem,
        )
        rows = summarize(model, args.input_size)
    except ValueError as err:
        parser.error(str(err))
    title = f"{args.model} at {args.input_size}x{args.input_size} (stem {args.stem})"
    print(format_summary(rows, title))


def make_dataset_main(argv: list[str]) -> None:
    """`inception-lightning make-dataset --out DIR`: write the built-in dataset as a folder."""
    from inception_lightning.data import BOXES_FILE, write_dataset

    parser = argparse.ArgumentParser(
        prog="inception-lightning make-dataset",
        description="Write the built-in shapes dataset as train/ and val/ class folders plus "
        f"{BOXES_FILE} (object boxes for scored attribution reports).",
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--num-classes", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=79)
    parser.add_argument("--num-samples", type=int, default=4000)
    parser.add_argument("--difficulty", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    try:
        out = write_dataset(
            args.out,
            num_classes=args.num_classes,
            image_size=args.image_size,
            num_samples=args.num_samples,
            difficulty=args.difficulty,
            seed=args.seed,
            val_fraction=args.val_fraction,
        )
    except (ValueError, OSError) as err:
        parser.error(str(err))
    print(f"wrote {args.num_samples} images to {out}")


def report_main(argv: list[str]) -> None:
    """`inception-lightning report --ckpt CKPT --data DIR [--boxes FILE] --out OUT`."""
    from inception_lightning.explain.checkpoint_report import report_from_checkpoint

    parser = argparse.ArgumentParser(
        prog="inception-lightning report",
        description="Write a static Grad-CAM attribution report (index.html, PNG overlays, "
        "summary.json) for a checkpoint on an image folder.",
    )
    parser.add_argument("--ckpt", required=True, help="an InceptionClassifier checkpoint")
    parser.add_argument("--data", required=True, help="class folders (its val/ split if any)")
    parser.add_argument("--out", required=True, help="the report folder")
    parser.add_argument("--boxes", help="object boxes/masks file (make-dataset's boxes.json)")
    parser.add_argument("--image-size", type=int, help="default: the model's stem size")
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layer", help="dotted module name (default: last Inception block)")
    args = parser.parse_args(argv)
    try:
        index = report_from_checkpoint(
            args.ckpt,
            args.data,
            args.out,
            args.boxes,
            args.image_size,
            args.per_class,
            args.seed,
            args.layer,
        )
    except (ValueError, OSError, KeyError) as err:
        parser.error(str(err))
    print(f"wrote {index}")


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "summary": summary_main,
    "make-dataset": make_dataset_main,
    "report": report_main,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of `inception-lightning` and `python -m inception_lightning`."""
    words = sys.argv[1:] if argv is None else argv
    command = COMMANDS.get(words[0]) if words else None
    if command is not None:
        command(words[1:])
    else:
        lightning_main(argv)
