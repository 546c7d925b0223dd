"""Work that one process per node does first, so the node's other processes find it done."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import TypeVar

import lightning.pytorch as pl
import torch.distributed as dist

T = TypeVar("T")


def first_on_each_node(trainer: pl.Trainer | None, work: Callable[[], T]) -> T:
    """Run `work` on local rank 0 of each node; the node's other ranks wait, then run it too.

    Meant for work that leaves its result on the node's disk (the scan cache), so that the
    others' run finds it there and costs little. Lightning offers `prepare_data` for once-per-
    node work, but an error there reaches local rank 0 alone while the other ranks carry on; here
    the wait is one collective, an all-gather of every rank's outcome, so when `work` raises on a
    local rank 0 every rank raises that error, and none waits for a rank that has gone.

    Args:
        trainer: the trainer of the run; None (no trainer) or a single process runs `work`.
        work: what to do; it must raise an error for every rank to see, not hang.
    """
    if trainer is None or trainer.world_size == 1 or not dist.is_initialized():
        return work()
    error: BaseException | None = None
    if trainer.local_rank == 0:
        try:
            result = work()
        except Exception as raised:
            error = raised
    outcomes: list[BaseException | None] = [None] * trainer.world_size
    dist.all_gather_object(outcomes, _portable(error))
    if error is not None:
        raise error
    failed = next((outcome for outcome in outcomes if outcome is not None), None)
    if failed is not None:
        raise failed
    return result if trainer.local_rank == 0 else work()


def _portable(error: BaseException | None) -> BaseException | None:
    """`error` if it survives pickling (to cross to the other ranks), else a RuntimeError."""
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
