"""Pieces the benchmark scripts share (imported as a sibling module: `from _common import`)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import yaml
from torch import Tensor

GPU_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "trainer" / "gpu.yaml"


class RepeatBatch:
    """An iterable yielding the same batch `length` times (a list would read as many loaders)."""

    def __init__(self, batch: tuple[Tensor, Tensor], length: int) -> None:
        self.batch, self.length = batch, length

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (self.batch for _ in range(self.length))

    def __len__(self) -> int:
        return self.length


def apply_gpu_config(args: argparse.Namespace, gpu: bool) -> None:
    """Set `precision`, `cudnn_benchmark` and `channels_last` from `conf/trainer/gpu.yaml`.

    On a GPU the benchmarks measure that file, the default GPU configuration; on the CPU they
    run fp32 in the contiguous format.
    """
    config = yaml.safe_load(GPU_CONFIG.read_text()) if gpu else {}
    args.precision = config.get("trainer", {}).get("precision", "32-true")
    args.cudnn_benchmark = config.get("trainer", {}).get("benchmark", False)
    args.channels_last = config.get("model", {}).get("channels_last", False)
