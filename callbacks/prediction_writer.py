"""PredictionWriter: `predict`'s top-k classes per image, as one CSV written atomically."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor
from typing_extensions import override

from inception_lightning.files import atomic_write
from inception_lightning.models.options import positive_int

Row = tuple[int, list[str]]  # (dataset index, CSV fields)


class PredictionWriter(BasePredictionWriter):
    """Write `predict`'s results to a CSV file: per image, its path and top-k classes.

    Columns: `path`, `label` (the class of the image's class subfolder, empty when it has none),
    then `class_1, prob_1, ..., class_k, prob_k`, most probable first. Rows follow the
    dataset's order. The predictions are the module's `predict_step` outputs (softmax
    probabilities `[B, num_classes]`); class names and paths come from the predict dataset
    (`classes`, `path(index)`, as `PredictDataModule`'s has).

    The file is written once, at the end, atomically (`files.atomic_write`): a run that fails
    leaves the previous file intact. Under DDP each rank writes its rows to a part file beside
    the output (so the folder must be shared by the ranks, as a single node's is), and rank 0
    merges them in input order, dropping the samples `DistributedSampler` repeats to even out
    the ranks.

    Args:
        output: the CSV file.
        top_k: classes per image (at most the number of classes).
    """

    def __init__(self, output: str | Path = "predictions.csv", top_k: int = 5) -> None:
        super().__init__(write_interval="batch")
        positive_int("top_k", top_k)
        self.output = Path(output)
        self.top_k = top_k
        self._rows: list[Row] = []

    @override
    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rows = []

    @override
    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Tensor,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if batch_indices is None:
            raise RuntimeError("PredictionWriter needs the batch indices Lightning tracks")
        dataset = _dataset(trainer, dataloader_idx)
        top = prediction.float().topk(min(self.top_k, prediction.shape[-1]), dim=-1)
        probs, classes = top.values.cpu().tolist(), top.indices.cpu().tolist()
        labels = batch[1].tolist() if isinstance(batch, list | tuple) else [-1] * len(probs)
        for index, label, p, c in zip(batch_indices, labels, probs, classes, strict=True):
            fields = [str(dataset.path(index)), dataset.classes[label] if label >= 0 else ""]
            for prob, cls in zip(p, c, strict=True):
                fields += [dataset.classes[cls], f"{prob:.6f}"]
            self._rows.append((int(index), fields))

    @override
    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size == 1:
            self._write(self._rows)
            return
        atomic_write(self._part(trainer.global_rank), _encode(self._rows, with_index=True))
        trainer.strategy.barrier("prediction_writer_parts")
        if trainer.is_global_zero:
            rows: dict[int, list[str]] = {}
            for rank in range(trainer.world_size):
                part = self._part(rank)
                for record in csv.reader(io.StringIO(part.read_text())):
                    rows.setdefault(int(record[0]), record[1:])
                part.unlink()
            self._write(list(rows.items()))
        trainer.strategy.barrier("prediction_writer_merged")

    def _write(self, rows: list[Row]) -> None:
        width = max((len(fields) for _, fields in rows), default=2)
        header = ["path", "label"]
        for k in range(1, (width - 2) // 2 + 1):
            header += [f"class_{k}", f"prob_{k}"]
        atomic_write(self.output, _encode(sorted(rows), header=header))
        rank_zero_info(f"wrote {self.output} ({len(rows)} images)")

    def _part(self, rank: int) -> Path:
        return self.output.with_name(f".{self.output.name}.rank{rank}")


def _encode(rows: list[Row], header: list[str] | None = None, with_index: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    for index, fields in rows:
        writer.writerow([str(index), *fields] if with_index else fields)
    return buffer.getvalue().encode()


def _dataset(trainer: pl.Trainer, dataloader_idx: int) -> Any:
    loaders = trainer.predict_dataloaders
    loader = loaders[dataloader_idx] if isinstance(loaders, Sequence) else loaders
    return loader.dataset


__all__ = ["PredictionWriter"]
