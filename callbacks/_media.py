"""Pictures for any logger: images, figures, histograms, text and report folders.

Scalars reach every logger through Lightning's `log_metrics`; everything else goes through
`media_of(trainer)`, one `Media` per logger that can show it:

- TensorBoard: `add_image`, `add_figure`, `add_histogram`, `add_text`;
- MLflow (`MLFlowLogger`): `log_image` (an image series by tag and step), `log_figure`,
  `log_text` and `log_artifacts` (histograms are drawn as figures);
- Weights & Biases (`WandbLogger`): `wandb.Image`, `wandb.Histogram`, `wandb.Html`;
- `CSVLogger`: PNG (and text) files under its log dir, `media/<tag>/step_<step>.png`, listed in
  `media/index.csv` (step, kind, tag, file), histograms drawn as figures.

Any other logger gets nothing but one warning per callback (`warn_unshown`) naming what it
cannot show. Only global rank 0 writes. A report folder lands in the run's own folder where the
logger has one (TensorBoard's and CSV's log dir, W&B's run files, which it syncs), and is also
logged as the run's artifacts where the logger keeps them (MLflow).
"""

from __future__ import annotations

import csv
import html
import io
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import (
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

STEP_KEY = "trainer/global_step"  # the x-axis WandbLogger gives every metric


class Media(ABC):
    """What one logger shows besides scalars."""

    keeps_artifacts = False
    """Whether the logger keeps files as the run's artifacts, apart from any folder of ours."""

    @abstractmethod
    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        """A `uint8 [H, W, 3]` picture."""

    @abstractmethod
    def figure(self, tag: str, figure: Figure, step: int) -> None:
        """A matplotlib figure."""

    @abstractmethod
    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        """A histogram of `values` (any shape, on the CPU)."""

    @abstractmethod
    def text(self, tag: str, text: str, step: int) -> None:
        """A text entry."""

    def run_dir(self) -> Path | None:
        """The run's own folder, where files put there belong to the run; None for none."""
        return None

    def artifacts(self, folder: Path, name: str) -> str | None:
        """Log the files of `folder` as the run's artifacts under `name`, where the logger
        keeps artifacts (`keeps_artifacts`), and say where they went; None elsewhere."""
        return None


class TensorBoardMedia(Media):
    """A `TensorBoardLogger`'s `SummaryWriter`."""

    def __init__(self, logger: TensorBoardLogger) -> None:
        self.logger = logger

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        self.logger.experiment.add_image(tag, picture, step, dataformats="HWC")

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        self.logger.experiment.add_figure(tag, figure, step, close=False)

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        self.logger.experiment.add_histogram(tag, values, step)

    def text(self, tag: str, text: str, step: int) -> None:
        self.logger.experiment.add_text(tag, text, step)

    def run_dir(self) -> Path | None:
        return Path(self.logger.log_dir)


class MLflowMedia(Media):
    """An `MLFlowLogger`'s run, through its `MlflowClient`."""

    keeps_artifacts = True

    def __init__(self, logger: MLFlowLogger) -> None:
        self.client = logger.experiment
        self.run_id = logger.run_id

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, picture, key=_mlflow_key(tag), step=step)

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        path = f"figures/{_path(tag)}/step_{step:06d}.png"
        self.client.log_figure(self.run_id, figure, path)

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        path = f"histograms/{_path(tag)}/step_{step:06d}.png"
        self.client.log_figure(self.run_id, histogram_figure(tag, values, step), path)

    def text(self, tag: str, text: str, step: int) -> None:
        self.client.log_text(self.run_id, text, f"text/{_path(tag)}/step_{step:06d}.txt")

    def artifacts(self, folder: Path, name: str) -> str | None:
        self.client.log_artifacts(self.run_id, str(folder), name)
        return f"the artifacts of MLflow run {self.run_id} ({name}/)"


class WandbMedia(Media):
    """A `WandbLogger`'s run (online or offline)."""

    def __init__(self, logger: WandbLogger) -> None:
        self.logger = logger

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        self.logger.log_image(tag, [picture], step)

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        self.logger.log_image(tag, [figure_picture(figure)], step)

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        import wandb

        histogram = wandb.Histogram(values.float().flatten().numpy())
        self.logger.experiment.log({tag: histogram, STEP_KEY: step})

    def text(self, tag: str, text: str, step: int) -> None:
        import wandb

        page = wandb.Html(f"<pre>{html.escape(text)}</pre>")
        self.logger.experiment.log({tag: page, STEP_KEY: step})

    def run_dir(self) -> Path | None:
        return Path(self.logger.experiment.dir)  # its files are the run's, synced with it


class CsvMedia(Media):
    """Files beside a `CSVLogger`'s `metrics.csv`, listed in `media/index.csv`.

    CSV holds numbers only, so pictures become PNG files and text `.txt` files; the index says
    which file holds which tag at which step.
    """

    INDEX_FIELDS = ("step", "kind", "tag", "file")

    def __init__(self, logger: CSVLogger) -> None:
        self.root = Path(logger.log_dir)
        self.media = self.root / "media"

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        path = self._file("image", tag, step, ".png")
        Image.fromarray(picture).save(path)

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        figure.savefig(self._file("figure", tag, step, ".png"))

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        histogram_figure(tag, values, step).savefig(self._file("histogram", tag, step, ".png"))

    def text(self, tag: str, text: str, step: int) -> None:
        self._file("text", tag, step, ".txt").write_text(text, encoding="utf-8")

    def run_dir(self) -> Path | None:
        return self.root

    def _file(self, kind: str, tag: str, step: int, suffix: str) -> Path:
        """The file for `tag` at `step`, its folder made and its line added to the index."""
        path = self.media / _path(tag) / f"step_{step:06d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        index = self.media / "index.csv"
        new = not index.exists()
        with index.open("a", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(self.INDEX_FIELDS)
            writer.writerow((step, kind, tag, path.relative_to(self.media).as_posix()))
        return path


MEDIA: tuple[tuple[type[Logger], type[Media]], ...] = (
    (TensorBoardLogger, TensorBoardMedia),
    (MLFlowLogger, MLflowMedia),
    (WandbLogger, WandbMedia),
    (CSVLogger, CsvMedia),
)


def media_of(trainer: pl.Trainer) -> list[Media]:
    """One `Media` per logger of `trainer` that shows pictures; none off global rank 0."""
    if not trainer.is_global_zero:
        return []
    found = []
    for logger in trainer.loggers:
        kind = _media_kind(logger)
        if kind is not None:
            found.append(kind(logger))
    return found


def warn_unshown(trainer: pl.Trainer, callback: Callback, what: str) -> None:
    """Warn once (on rank 0) for each logger of `trainer` that cannot show `what`.

    Call it from one hook per run (`setup` or `on_fit_start`).

    Args:
        trainer: the trainer the callback is attached to.
        callback: the callback, named in the warning.
        what: what the callback draws, e.g. "its heat map and histograms".
    """
    for logger in trainer.loggers:
        if _media_kind(logger) is None:
            rank_zero_warn(
                f"{type(callback).__name__}: {type(logger).__name__} cannot show {what} (they "
                "reach TensorBoardLogger, MLFlowLogger, WandbLogger and CSVLogger); its scalars "
                "are logged, and adding one of those loggers shows the rest."
            )


@contextmanager
def report_folder(
    media: Sequence[Media], chosen: Path | None, fallback: Path, who: str
) -> Iterator[Path]:
    """The folder to write a report into; on leaving, it is logged as the runs' artifacts.

    The folder is `chosen`, else `report/` in the run folder of the first logger that has one;
    else, when a logger keeps artifacts (an MLflow server), a temporary folder removed once
    they are logged; else `fallback`. Says on rank 0 where the report is.

    Args:
        media: the trainer's, from `media_of`.
        chosen: the user's folder, or None.
        fallback: the folder when no logger has one and none keeps artifacts.
        who: the callback, named in the message.
    """
    folder = chosen or next((run / "report" for run in (m.run_dir() for m in media) if run), None)
    temporary = None
    if folder is None and any(m.keeps_artifacts for m in media):
        temporary = tempfile.TemporaryDirectory(prefix="report-")
        folder = Path(temporary.name) / "report"
    folder = folder or fallback
    try:
        yield folder
        places = [where for m in media if (where := m.artifacts(folder, "report"))]
        if temporary is None:
            places.insert(0, str(folder))
        rank_zero_info(f"{who}: attribution report in {' and '.join(places)}")
    finally:
        if temporary is not None:
            temporary.cleanup()


def figure_picture(figure: Figure) -> np.ndarray:
    """A figure drawn as a `uint8 [H, W, 3]` picture."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def histogram_figure(tag: str, values: Tensor, step: int) -> Figure:
    """A histogram of `values` as a figure, for loggers without histograms of their own."""
    figure = Figure(figsize=(4.0, 3.0), dpi=100, layout="constrained")
    ax = figure.subplots()
    ax.hist(values.float().flatten().numpy(), bins=64)
    ax.set_title(f"{tag}, step {step}", fontsize=8)
    return figure


def _media_kind(logger: Logger) -> type[Media] | None:
    return next((media for kind, media in MEDIA if isinstance(logger, kind)), None)


def _path(tag: str) -> str:
    """A tag as a relative path: its `/`-separated parts, each of safe characters only."""
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", part) or "_" for part in tag.split("/")]
    return "/".join(part if part not in (".", "..") else "_" for part in parts)


def _mlflow_key(tag: str) -> str:
    """A tag as an MLflow image key, which allows alphanumerics and `_-./ ` only."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", tag)
