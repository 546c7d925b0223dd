"""Saving a module's or datamodule's constructor arguments as its hyperparameters."""

from __future__ import annotations

import inspect

import lightning.pytorch as pl


def save_init_arguments(
    owner: pl.LightningModule | pl.LightningDataModule, ignore: list[str]
) -> None:
    """`owner.save_hyperparameters(ignore=ignore)`, called from `owner`'s constructor.

    Lightning's own lookup of the constructor's frame keeps its frame in a local: a cycle that
    holds the callers' frames and their locals (data loaders and their worker processes, say)
    until a garbage-collector pass, which then waited 5 s per persistent loader. Given the frame,
    it makes none (`tests/test_module.py` checks each module and datamodule).
    """
    caller = inspect.currentframe()
    constructor = caller.f_back if caller else None
    del caller  # this frame in its own local would be the same cycle
    owner.save_hyperparameters(ignore=ignore, frame=constructor)
