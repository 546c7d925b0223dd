"""Helpers of the tests that use the callbacks in a user's own project: a plain module, a labelled
image set, calibrated BatchNorm statistics and a reader of W&B's offline run files."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from inception_lightning.data import Normalize


class UserModule(pl.LightningModule):
    """What a user writes around any network: cross-entropy, plain SGD, `val/loss` and
    `val/acc`; nothing of the package's contract."""

    def __init__(self, net: nn.Module, lr: float = 0.01) -> None:
        super().__init__()
        self.net = net
        self.lr = lr

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        return F.cross_entropy(self.net(images), labels)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self.net(images)
        self.log("val/loss", F.cross_entropy(logits, labels))
        self.log("val/acc", (logits.argmax(dim=1) == labels).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class Noise(Dataset):
    """A `LabelledImages` set of seeded uint8 noise, `size` px, labels cycling over `classes`."""

    def __init__(self, n: int = 4, size: int = 75, classes: int = 4, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.classes = [f"class{c}" for c in range(classes)]
        self.labels = [i % classes for i in range(n)]
        self.images = torch.randint(0, 256, (n, 3, size, size), generator=generator).byte()
        self.normalize = Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        self.has_masks = False

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], self.labels[index]

    def mask(self, index: int) -> Tensor:
        raise KeyError("no masks")


def calibrate_batchnorm(net: nn.Module, size: int = 75, seed: int = 1) -> nn.Module:
    """Give every BatchNorm the statistics of 8 images like `Noise`'s (not 0 and 1), in place."""
    layers = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = None  # a cumulative average: one batch sets the statistics
    images = Noise(8, size, seed=seed)
    with torch.no_grad():
        net.train()(images.normalize(images.images))
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    return net.eval()


def wandb_records(run_dir: Path) -> Iterator[Any]:
    """Every record (wandb's own protobuf `Record`) of an offline run's `run-*.wandb` file.

    wandb 0.19+ reads these files in its Go core only; the format is LevelDB's log format
    (32 KiB blocks of `crc32c, length, type` headed chunks) after a 7-byte `:W&B` header.
    """
    from wandb.proto import wandb_internal_pb2

    data = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    block, offset, pending = 32768, 7, b""
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # too little room left for a header: block padding
            offset += block - offset % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        if offset + 7 + length > len(data):  # still being written
            return
        chunk = data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind == 0:  # zero padding
            continue
        pending += chunk
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_history(run_dir: Path, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The rows the run logged (`run.log`), each key to its JSON-decoded value; media (images,
    histograms, HTML) as dictionaries of their fields (`_type`, `path`, `values`, ...).

    wandb's core process may still be writing the file when `wandb.finish()` returns: this
    waits (up to `timeout` seconds) for the run's last record, its exit record.
    """
    import json
    import time

    deadline = time.monotonic() + timeout
    records = list(wandb_records(run_dir))
    while not any(r.WhichOneof("record_type") == "exit" for r in records):
        assert time.monotonic() < deadline, f"{run_dir} has no exit record: the run did not end"
        time.sleep(0.2)
        records = list(wandb_records(run_dir))
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                *parents, last = [item.key] if item.key else list(item.nested_key)
                node = row
                for parent in parents:
                    node = node.setdefault(parent, {})
                node[last] = json.loads(item.value_json)
            rows.append(row)
    return rows


class Recorded(pl.loggers.Logger):
    """Keeps every logged scalar in memory, unrounded, by key."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, float] = {}

    @property
    def name(self) -> str:
        return "recorded"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: object, *args: object, **kwargs: object) -> None:
        """Nothing to keep."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.update(metrics)
