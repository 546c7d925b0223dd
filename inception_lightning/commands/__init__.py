"""The console script's own subcommands, beside LightningCLI's fit, validate, test and predict.

Each is one function: its signature gives the flags (spelled as LightningCLI spells them), its
docstring the help, and `inception-lightning <name> -c FILE --print_config` works as for fit.
A command returns what it made: a path is reported as written, text is printed.
"""

from collections.abc import Callable
from pathlib import Path

from inception_lightning.commands.convert import convert
from inception_lightning.commands.export import export
from inception_lightning.commands.report import report
from inception_lightning.commands.summary import summary
from inception_lightning.commands.sweep import sweep
from inception_lightning.data import write_dataset

COMMANDS: dict[str, Callable[..., Path | str]] = {
    "export": export,
    "report": report,
    "summary": summary,
    "make-dataset": write_dataset,
    "sweep": sweep,
    "convert": convert,
}

__all__ = ["COMMANDS"]
