"""Where a training step's time goes, and whether it makes the host wait for the device.

Runs `InceptionClassifier` through the Trainer (EMA, clipping at 2.0, the GPU configuration of
`conf/trainer/gpu.yaml` on a GPU) on one repeated batch, profiles the steady steps with the
PyTorch profiler and prints:

- the step broken down by Lightning's actions (`training_step`, `backward`, `optimizer_step`,
  each callback hook), host and device time per step;
- the operators with the most device time (self time: a convolution's own kernels);
- the host-device syncs per step, found by `HostSyncAudit` in a second run, with the code that
  ran them.

Examples:
    python benchmarks/profile_step.py --tiny                       # CI: proves it runs
    python benchmarks/profile_step.py --device cpu                 # inception_v3, 128 px, b 16
    python benchmarks/profile_step.py --device cuda --compile       # 299 px, batch 256
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
import torch
from _common import apply_gpu_config, fit_classifier
from lightning.pytorch.profilers import Profiler
from torch.autograd.profiler import record_function
from torch.autograd.profiler_util import FunctionEventAvg
from torch.profiler import ProfilerActivity, profile

from inception_lightning.callbacks import HostSyncAudit


class RangeProfiler(Profiler):
    """Lightning's action names (hooks, `training_step`, ...) as profiler ranges."""

    def __init__(self) -> None:
        super().__init__()
        self._open: dict[str, record_function] = {}

    def start(self, action_name: str) -> None:
        """Open the range of `action_name`."""
        self._open[action_name] = record_function(action_name)
        self._open[action_name].__enter__()

    def stop(self, action_name: str) -> None:
        """Close the range of `action_name`."""
        self._open.pop(action_name).__exit__(None, None, None)

    def summary(self) -> str:
        """Nothing: the PyTorch profiler's tables are printed instead."""
        return ""


class ProfileSteps(pl.Callback):
    """Profiles the steps `first` to `first + steps - 1`, batch start to batch start."""

    def __init__(self, first: int, steps: int, activities: list[ProfilerActivity]) -> None:
        self.first, self.steps = first, steps
        self.profiler = profile(activities=activities)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.first:
            self.profiler.start()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == self.first + self.steps:
            self.profiler.stop()


def fit(args: argparse.Namespace, callback: pl.Callback, ranges: bool) -> None:
    """Train `warmup + steps` steps with EMA and `callback`."""
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    labels = torch.randint(0, args.num_classes, (args.batch_size,))
    fit_classifier(
        args,
        args.model,
        (images, labels),
        args.warmup + args.steps,
        args.compile,
        [callback],
        log_every_n_steps=args.log_every,
        profiler=RangeProfiler() if ranges else None,
    )


def _device_us(event: FunctionEventAvg, self_time: bool) -> float:
    if self_time:
        return event.self_device_time_total
    return event.device_time_total


def print_breakdown(averages: list[FunctionEventAvg], steps: int, gpu: bool) -> None:
    """Lightning's per-step actions: host (and device) milliseconds per step."""
    actions = [
        e
        for e in averages
        if (e.key.startswith("[") or e.key == "run_training_batch") and e.count % steps == 0
    ]
    actions.sort(key=lambda e: e.cpu_time_total, reverse=True)
    print(
        f"{'Lightning action':<64}{'host ms/step':>13}" + (f"{'device ms/step':>16}" if gpu else "")
    )
    for event in actions[:12]:
        line = f"{event.key[:63]:<64}{event.cpu_time_total / 1e3 / steps:>13.2f}"
        if gpu:
            line += f"{_device_us(event, False) / 1e3 / steps:>16.2f}"
        print(line)


def print_top_operators(averages: list[FunctionEventAvg], steps: int, gpu: bool) -> None:
    """The operators with the most self time on the device (the CPU when there is no GPU)."""
    ops = [e for e in averages if e.key.startswith("aten::")]
    total = sum((_device_us(e, True) if gpu else e.self_cpu_time_total) for e in ops) or 1.0
    ops.sort(key=lambda e: _device_us(e, True) if gpu else e.self_cpu_time_total, reverse=True)
    where = "device" if gpu else "CPU"
    print(f"{'operator':<40}{'calls/step':>11}{f'self {where} ms/step':>22}{'share':>8}")
    for event in ops[:12]:
        self_us = _device_us(event, True) if gpu else event.self_cpu_time_total
        print(
            f"{event.key:<40}{event.count / steps:>11.1f}{self_us / 1e3 / steps:>22.2f}"
            f"{self_us / total:>8.1%}"
        )


def main() -> None:
    """Parse arguments, profile, audit and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="inception_v3")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=3, help="steps before the profile")
    parser.add_argument("--log-every", type=int, default=50, help="trainer.log_every_n_steps")
    parser.add_argument("--compile", action="store_true", help="compile_model=True")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run for CI")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    if args.tiny:
        args.width, args.steps, args.warmup, args.num_classes = 0.0625, 2, 1, 10
        args.image_size, args.batch_size, args.log_every = 75, 2, 2
    args.image_size = args.image_size or (299 if gpu else 128)
    args.batch_size = args.batch_size or (256 if gpu else 16)
    apply_gpu_config(args, gpu)
    args.accelerator = "gpu" if gpu else "cpu"

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    window = ProfileSteps(args.warmup, args.steps, activities)
    fit(args, window, ranges=True)
    averages = list(window.profiler.key_averages())
    print(
        f"{args.model} width {args.width}, {args.image_size} px, batch {args.batch_size}, "
        f"{args.precision}, channels_last={args.channels_last}, compile={args.compile}, "
        f"{args.steps} profiled steps after {args.warmup}"
    )
    print_breakdown(averages, args.steps, gpu)
    print()
    print_top_operators(averages, args.steps, gpu)
    print()

    audit = HostSyncAudit(first_step=args.warmup, num_steps=args.steps)
    fit(args, audit, ranges=False)
    quiet = sorted(set(audit.syncs) - audit.logging_steps)
    print(
        f"host-device syncs (log_every_n_steps={args.log_every}): "
        + ", ".join(f"step {s}: {len(audit.syncs[s])}" for s in sorted(audit.syncs))
    )
    print(f"steps that wrote no logs: {quiet}; syncs on them: {len(audit.unexpected)}")
    for sync in audit.unexpected[:10]:
        print("  " + sync.line())


if __name__ == "__main__":
    main()
