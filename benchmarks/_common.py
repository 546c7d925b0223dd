"""Pieces the benchmark scripts share (imported as a sibling module: `from _common import`)."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning.pytorch as pl
import yaml
from torch import Tensor

from inception_lightning.callbacks.ema import InceptionEMA
from inception_lightning.training import ComputeOptions
from inception_lightning.training.module import InceptionClassifier

TRAINER_CONFIGS = Path(__file__).resolve().parents[1] / "conf" / "trainer"
GPU_CONFIG = TRAINER_CONFIGS / "gpu.yaml"
CPU_CONFIG = TRAINER_CONFIGS / "cpu.yaml"


def median_times(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each function, run interleaved so drifting load hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for repeat in range(repeats + 1):
        for fn, record in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            if repeat:  # the first round warms up
                record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


class RepeatBatch:
    """An iterable yielding the same batch `length` times (a list would read as many loaders)."""

    def __init__(self, batch: tuple[Tensor, Tensor], length: int) -> None:
        self.batch, self.length = batch, length

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (self.batch for _ in range(self.length))

    def __len__(self) -> int:
        return self.length


def apply_config(args: argparse.Namespace, config_file: Path | None) -> None:
    """Set `precision`, `cudnn_benchmark` and `channels_last` from a trainer config file.

    None is the plain configuration: fp32 in the contiguous format, no autotuning.
    """
    config = yaml.safe_load(config_file.read_text()) if config_file else {}
    args.precision = config.get("trainer", {}).get("precision", "32-true")
    args.cudnn_benchmark = config.get("trainer", {}).get("benchmark", False)
    args.channels_last = config.get("model", {}).get("compute", {}).get("channels_last", False)


def apply_gpu_config(args: argparse.Namespace, gpu: bool) -> None:
    """On a GPU, `conf/trainer/gpu.yaml`, the default GPU configuration; on the CPU, fp32."""
    apply_config(args, GPU_CONFIG if gpu else None)


def fit_classifier(
    args: argparse.Namespace,
    model: str,
    batch: tuple[Tensor, Tensor],
    steps: int,
    compiled: bool,
    callbacks: list[pl.Callback],
    **trainer_kwargs: object,
) -> None:
    """Train `InceptionClassifier` (no aux head) on `batch` for `steps` steps through the Trainer.

    A full step each: forward, backward, RMSpropTF, clipping at 2.0 and an EMA update, in the
    precision, memory format and cuDNN setting of `args` (see `apply_config`); no logger,
    checkpoint, progress bar or validation.
    """
    module = InceptionClassifier(
        model=model,
        num_classes=args.num_classes,
        model_kwargs={"aux_head": False, "width": args.width},
        compute=ComputeOptions(channels_last=args.channels_last, compile=compiled),
    )
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,
        benchmark=args.cudnn_benchmark,
        max_steps=steps,
        gradient_clip_val=2.0,
        callbacks=[InceptionEMA(decay=0.9999), *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        **trainer_kwargs,
    )
    trainer.fit(module, train_dataloaders=RepeatBatch(batch, steps))
