"""PredictionWriter: `predict`'s top-k classes per image, as one CSV written atomically."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor
from typing_extensions import override

from inception_lightning.files import atomic_write
from inception_lightning.models.options import positive_int
from inception_lightning.training.fence import rank_zero_alone

Row = tuple[int, list[str]]  # (dataset index, CSV fields)


class PredictionWriter(BasePredictionWriter):
    """Write `predict`'s results to a CSV file: per image, its path and top-k classes.

    Columns: `path`, `label` (the class of the image's class subfolder, empty when it has none),
    then `class_1, prob_1, ..., class_k, prob_k`, most probable first. Rows follow the
    dataset's order. The predictions are the module's `predict_step` outputs (softmax
    probabilities `[B, num_classes]`); class names and paths come from the predict dataset
    (`classes`, `path(index)`, as `PredictDataModule`'s has).

    The file is written once, at the end, atomically (`files.atomic_write`): a run that fails
    leaves the previous file intact. Under DDP rank 0 gathers every rank's rows through the
    process group (so the ranks need no shared folder, on one node or several) and merges them
    in input order, dropping the samples `DistributedSampler` repeats to even out the ranks;
    the others wait for the file outside any collective's timeout
    (`training.fence.rank_zero_alone`).

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
        parts: list[Any] | None = [None] * trainer.world_size if trainer.is_global_zero else None
        dist.gather_object(self._rows, parts, dst=0)
        with rank_zero_alone(trainer, "PredictionWriter's merge") as lead:
            if lead and parts is not None:
                rows: dict[int, list[str]] = {}
                for part in parts:
                    for index, fields in part:
                        rows.setdefault(index, fields)
                self._write(list(rows.items()))

    def _write(self, rows: list[Row]) -> None:
        width = max((len(fields) for _, fields in rows), default=2)
        header = ["path", "label"]
        for k in range(1, (width - 2) // 2 + 1):
            header += [f"class_{k}", f"prob_{k}"]
        atomic_write(self.output, _encode(sorted(rows), header=header))
        rank_zero_info(f"wrote {self.output} ({len(rows)} images)")


def _encode(rows: list[Row], header: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(fields for _, fields in rows)
    return buffer.getvalue().encode()


def _dataset(trainer: pl.Trainer, dataloader_idx: int) -> Any:
    loaders = trainer.predict_dataloaders
    loader = loaders[dataloader_idx] if isinstance(loaders, Sequence) else loaders
    return loader.dataset


__all__ = ["PredictionWriter"]
