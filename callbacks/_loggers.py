"""The diagnostics callbacks on a trainer without a logger: say once what is lost, go on."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_warn


def has_logger(trainer: pl.Trainer, callback: Callback, lost: str) -> bool:
    """Whether `trainer` has a logger; if not, warn on rank 0 that `lost` goes unlogged.

    Call it from one hook per run (`setup` or `on_fit_start`): one warning per callback.

    Args:
        trainer: the trainer the callback is attached to.
        callback: the callback, named in the warning.
        lost: what the callback cannot log, e.g. "its branch statistics are not computed".
    """
    if trainer.loggers:
        return True
    rank_zero_warn(
        f"{type(callback).__name__}: the trainer has no logger, so {lost}; "
        "give the trainer a logger (leave out `--trainer.logger false`) to see them."
    )
    return False
