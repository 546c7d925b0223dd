"""A progress bar that shows training metrics without a host-device sync on every step."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import RichProgressBarTheme

from inception_lightning._compat import writes_logs


class LoggingStepProgressBar(RichProgressBar):
    """Lightning's rich bar, reading the training metrics it shows only on logging steps.

    Lightning turns every metric logged with ``prog_bar=True`` into a Python float at the end
    of every batch; on a GPU each such ``.item()`` makes the host wait for the step to finish,
    so the next step cannot be queued behind it. `InceptionClassifier` therefore logs nothing
    to the bar, and this bar reads the metrics named in ``show`` from
    ``trainer.callback_metrics`` (which holds tensors) on the steps where Lightning writes its
    logs (every ``trainer.log_every_n_steps``), and shows the last values in between.

    Args:
        show: names of logged training metrics to display.
        refresh_rate: batches between redraws (Lightning's argument).
        leave: keep finished epoch bars on screen (Lightning's argument).
        theme: colours (Lightning's argument); None is Lightning's default theme.
        console_kwargs: arguments of the ``rich`` console (Lightning's argument).
    """

    def __init__(
        self,
        show: tuple[str, ...] = ("train/loss",),
        refresh_rate: int = 1,
        leave: bool = False,
        theme: RichProgressBarTheme | None = None,
        console_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(refresh_rate, leave, theme or RichProgressBarTheme(), console_kwargs)
        self.show = tuple(show)
        self._shown: dict[str, float] = {}

    def get_metrics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        """Lightning's bar metrics plus ``show``, read on logging steps (one sync there)."""
        if trainer.training and writes_logs(trainer):
            values = trainer.callback_metrics
            self._shown = {name: float(values[name]) for name in self.show if name in values}
        return {**super().get_metrics(trainer, pl_module), **self._shown}
