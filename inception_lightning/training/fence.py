"""How a multi-process run ends cleanly: rank 0's own work fenced from the other ranks, and the
process group released before the interpreter shuts down.

Two things went wrong at the end of a DDP run (issue 24):

- A rank that leaves `fit` while rank 0 still works alone (the attribution report, the merge of
  the predictions) exits early; were the others to wait in a collective (a barrier) instead,
  a report longer than the process group's timeout would end the job with a timeout.
  `rank_zero_alone` makes the other ranks wait on the process group's key-value store, polled,
  with no deadline, and then meet rank 0 in one barrier, which they all reach within a poll.
- A process that exits right after a gloo collective can abort ("terminate called without an
  active exception", exit code -6, about one exit in twenty on a busy machine): gloo's worker
  thread drops its last reference to the collective's tensors after the caller has returned,
  and if the interpreter has begun to shut down by then, taking the GIL to free them ends the
  thread with `pthread_exit`, which C++ turns into `std::terminate`. Lightning's launcher then
  kills the other ranks. Lightning destroys the process group at exit for NCCL only
  (`lightning.fabric.utilities.distributed._init_dist_connection`); `release_group_at_exit`
  does it for every backend, from an `atexit` handler, which runs while other threads may still
  take the GIL.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager

import lightning.pytorch as pl
import torch.distributed as dist

from inception_lightning._compat import default_store

POLL_S = 0.25
"""How often a waiting rank reads the store: the most a fence adds to rank 0's work."""
DONE = b"done"
FAILED = b"failed: "

_calls = itertools.count()


@contextmanager
def rank_zero_alone(trainer: pl.Trainer, name: str) -> Iterator[bool]:
    """Fence work that global rank 0 does alone: every rank enters, rank 0 does the work (the
    context yields True there, False elsewhere), and no rank leaves before rank 0 is done.

    The other ranks wait outside any collective's timeout, however long rank 0 takes, by
    polling the process group's store for rank 0's word (`POLL_S`); then all ranks meet in a
    barrier, which they reach within a poll, so rank 0 (which hosts the store) never goes
    before the others have read it. When rank 0's work raises, every rank raises: rank 0 its
    error, the others one naming `name` and that error. A rank 0 that dies takes the store with
    it, and the others' next read raises. Every rank must enter the same fences in the same
    order. Without a process group (one process, or a strategy that does not use
    torch.distributed) it is rank 0's work followed by the strategy's barrier.

    Args:
        trainer: the run's trainer.
        name: what rank 0 does, for the store's key and the others' error.
    """
    lead = trainer.is_global_zero
    if trainer.world_size == 1 or not dist.is_initialized():
        yield lead
        trainer.strategy.barrier(name)
        return
    release_group_at_exit()
    store, key = default_store(), f"inception_lightning/fence/{next(_calls)}/{name}"
    if not lead:
        yield False
        word = _wait(store, key, name)
        trainer.strategy.barrier(name)
        if word != DONE:
            raise RuntimeError(f"{name} failed on rank 0: {word.removeprefix(FAILED).decode()}")
        return
    try:
        yield True
    except BaseException as error:
        store.set(key, FAILED + f"{type(error).__name__}: {error}".encode())
        trainer.strategy.barrier(name)
        raise
    store.set(key, DONE)
    trainer.strategy.barrier(name)


def _wait(store: dist.Store, key: str, name: str) -> bytes:
    """Rank 0's word under `key`, however long it takes; raises if rank 0 has gone."""
    try:
        while not store.check([key]):
            time.sleep(POLL_S)
        return store.get(key)
    except dist.DistNetworkError as error:
        first = str(error).partition("\n")[0]
        raise RuntimeError(f"rank 0 went away during {name} ({first})") from None


@functools.cache
def release_group_at_exit() -> None:
    """Destroy the default process group when the interpreter exits, before it shuts down.

    Registered once per process; a group already destroyed is left alone. See the module
    docstring for the abort this prevents.
    """
    atexit.register(_release_group)


def _release_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["POLL_S", "rank_zero_alone", "release_group_at_exit"]
