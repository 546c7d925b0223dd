"""When a step-wise callback acts: on the steps Lightning writes its logs, and which those are."""

from __future__ import annotations

import lightning.pytorch as pl


def is_due(step: int, every_n_steps: int) -> bool:
    """Whether the 0-based optimiser step `step` is the last of a window of `every_n_steps`.

    Lightning's `log_every_n_steps` picks the same steps (n-1, 2n-1, ...). A callback that reads
    device tensors on them (a host-device sync) therefore syncs only on steps on which Lightning
    syncs anyway to write its logs, when both use the same cadence (50 by default).
    """
    return (step + 1) % every_n_steps == 0


def writes_logs(trainer: pl.Trainer) -> bool:
    """Whether the current (or, from `on_train_batch_start`, the coming) step writes logs."""
    # private, but the exact test Lightning itself uses before it reads the logged values
    return trainer._logger_connector.should_update_logs
