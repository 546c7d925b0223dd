"""Training and inference throughput of InceptionClassifier against timm in a plain loop.

Both sides run in the same process on the same batch, precision and memory format:

- ours: `InceptionClassifier` through the Lightning Trainer, a full step each (forward,
  backward, RMSpropTF, gradient clipping at 2.0, EMA update);
- reference: timm's model of the same architecture in a plain PyTorch loop with RMSpropTF,
  label smoothing and clipping (for IR-v1, which timm lacks, our own network in that loop);
  with `--ref-ema` also timm's `ModelEmaV3` (decay 0.9999), the EMA update ours does.

Configurations: on a GPU, `conf/trainer/gpu.yaml` (bf16-mixed, channels_last, cuDNN
autotuning); on the CPU, each `--precision`: `32-true` is fp32 in the contiguous format,
`bf16-mixed` is `conf/trainer/cpu.yaml` (bf16 autocast, channels_last). The CPU default is both
where the CPU computes bf16 natively (AMX-BF16 or AVX512-BF16), else fp32 alone.

Each mode (`eager`, `compiled`: `torch.compile` on both sides) and configuration reports
training and inference images/s after the warm-up steps (the best of `--repeats` runs per
side, alternating the order of every side and configuration), their ratio, the ratio of ours
to the eager reference (the gain a user gets by switching), the peak GPU memory of each
training run; then each side's bf16 speed-up over fp32, and the compile time (the first step's
time less a steady step's) with the steps it takes a compiled run to win it back.

Examples:
    python benchmarks/throughput.py --tiny                 # CI: proves it runs
    python benchmarks/throughput.py --device cpu           # 128 px, batch 16, fp32 and bf16
    OMP_NUM_THREADS=1 TORCHINDUCTOR_COMPILE_THREADS=1 \
        python benchmarks/throughput.py --device cpu --cpu-time --ref-ema   # on a busy machine
    python benchmarks/throughput.py --device cuda          # 299 px, batch 256, gpu.yaml
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import timm
import torch
from _common import CPU_CONFIG, GPU_CONFIG, apply_config, fit_classifier
from timm.optim import RMSpropTF
from timm.utils import ModelEmaV3
from torch import Tensor, nn

from inception_lightning import create_model
from inception_lightning.models.registry import get_entry
from inception_lightning.training.cpu_recipe import native_bf16

MODELS = ["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2"]


@dataclass(frozen=True)
class Run:
    """One timed run: steady images/s, the first step's seconds and the peak GPU memory."""

    rate: float
    first_step_s: float
    step_s: float
    peak_mib: float | None

    @property
    def compile_s(self) -> float:
        """The first step's time beyond a steady step's: compilation and autotuning."""
        return self.first_step_s - self.step_s


def cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (inductor's compiler runs),
    in the kernel's clock ticks (10 ms on Linux): for steps of a second or more, not `--tiny`."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class Clock:
    """Times steps 0 and 1 (the first step) and `warmup` to the end (the steady steps).

    In wall time, or with `cpu_time` in CPU time (`cpu_seconds`): with one thread
    (`OMP_NUM_THREADS=1`) and inductor compiling in this process (`TORCHINDUCTOR_COMPILE_THREADS=1`)
    that is the work done, whatever else the machine runs.
    """

    def __init__(
        self, device: torch.device, warmup: int, steps: int, batch: int, cpu_time: bool = False
    ) -> None:
        self.device, self.warmup, self.steps, self.batch = device, warmup, steps, batch
        self.timer = cpu_seconds if cpu_time else time.perf_counter
        self.marks: dict[int, float] = {}

    def mark(self, step: int) -> None:
        """Record the time at the start of `step` (`warmup + steps` is the end)."""
        if step in (0, 1, self.warmup, self.warmup + self.steps):
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.marks[step] = self.timer()

    def run(self) -> Run:
        """The figures of the marks recorded."""
        steady = self.marks[self.warmup + self.steps] - self.marks[self.warmup]
        peak = torch.cuda.max_memory_allocated() / 2**20 if self.device.type == "cuda" else None
        return Run(
            self.steps * self.batch / steady,
            self.marks[1] - self.marks[0],
            steady / self.steps,
            peak,
        )


class ClockCallback(pl.Callback):
    """Marks the clock at every training batch start and at the end of training."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self.clock.mark(trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.mark(trainer.global_step)


def best_of(runs: list[Run]) -> Run:
    """The fastest run, with the first run's first step: the cold compilation."""
    best = max(runs, key=lambda run: run.rate)
    return replace(best, first_step_s=runs[0].first_step_s)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _autocast(args: argparse.Namespace) -> torch.autocast | nullcontext:
    if args.precision == "bf16-mixed":
        return torch.autocast(args.device.type, dtype=torch.bfloat16)
    return nullcontext()


def ours_train(
    name: str, args: argparse.Namespace, batch: tuple[Tensor, Tensor], compiled: bool
) -> Run:
    """InceptionClassifier trained through the Trainer."""
    clock = Clock(args.device, args.warmup, args.steps, batch[0].shape[0], args.cpu_time)
    _reset_peak(args.device)
    steps = args.warmup + args.steps
    images = batch[0].contiguous(memory_format=_memory_format(args))
    fit_classifier(args, name, (images, batch[1]), steps, compiled, [ClockCallback(clock)])
    return clock.run()


def reference_model(name: str, args: argparse.Namespace) -> nn.Module:
    """timm's model of the same architecture, or ours where timm has none."""
    timm_name = get_entry(name).timm_name
    if timm_name is None or args.width != 1.0:
        return create_model(name, num_classes=args.num_classes, aux_head=False, width=args.width)
    return timm.create_model(timm_name.split(".")[0], num_classes=args.num_classes)


def reference_train(
    model: nn.Module, args: argparse.Namespace, batch: tuple[Tensor, Tensor], compiled: bool
) -> Run:
    """A plain PyTorch training loop (with timm's EMA under `--ref-ema`)."""
    model = model.to(args.device, memory_format=_memory_format(args)).train()
    step_model = torch.compile(model) if compiled else model
    ema = ModelEmaV3(model, decay=0.9999) if args.ref_ema else None
    optimizer = RMSpropTF(model.parameters(), lr=0.045, alpha=0.9, eps=1.0, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    images, labels = batch[0].to(args.device, memory_format=_memory_format(args)), batch[1]
    labels = labels.to(args.device)
    clock = Clock(args.device, args.warmup, args.steps, images.shape[0], args.cpu_time)
    _reset_peak(args.device)
    for step in range(args.warmup + args.steps):
        clock.mark(step)
        with _autocast(args):
            loss = loss_fn(step_model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optimizer.step()
        if ema is not None:
            ema.update(model, step=step)
    clock.mark(args.warmup + args.steps)
    return clock.run()


def inference(model: nn.Module, args: argparse.Namespace, images: Tensor, compiled: bool) -> Run:
    """Eval-mode forward passes under `torch.inference_mode`."""
    # the memory format is set outside inference mode: the model trains in later runs
    model = model.to(args.device, memory_format=_memory_format(args)).eval()
    forward: Callable[[Tensor], Tensor] = torch.compile(model) if compiled else model
    images = images.to(args.device, memory_format=_memory_format(args))
    clock = Clock(args.device, args.warmup, args.steps, images.shape[0], args.cpu_time)
    _reset_peak(args.device)
    with torch.inference_mode():
        for step in range(args.warmup + args.steps):
            clock.mark(step)
            with _autocast(args):
                forward(images)
        clock.mark(args.warmup + args.steps)
    return clock.run()


def _memory_format(args: argparse.Namespace) -> torch.memory_format:
    return torch.channels_last if args.channels_last else torch.contiguous_format


def _configurations(args: argparse.Namespace) -> dict[str, argparse.Namespace]:
    """`args` in each configuration measured, by label: gpu.yaml, or each CPU `--precision`."""
    files = {"gpu.yaml": GPU_CONFIG} if args.device.type == "cuda" else {}
    if not files:
        default = ["32-true", "bf16-mixed"] if native_bf16() else ["32-true"]
        names = {"32-true": ("fp32", None), "bf16-mixed": ("bf16+channels_last", CPU_CONFIG)}
        files = dict(names[precision] for precision in args.precision or default)
    configurations = {}
    for label, config_file in files.items():
        configurations[label] = argparse.Namespace(**vars(args))
        apply_config(configurations[label], config_file)
    return configurations


def _sizes(args: argparse.Namespace) -> None:
    """Fill in the sizes of the device (and of the tiny mode)."""
    gpu = args.device.type == "cuda"
    if args.tiny:
        args.models, args.width, args.steps, args.warmup = ["inception_v3"], 0.125, 2, 2
        args.modes, args.repeats = ["eager"], 1  # compiling takes minutes on a 2-core CPU
        args.num_classes, args.image_size, args.batch_size = 10, 75, 4
    args.image_size = args.image_size or (299 if gpu else 128)
    args.batch_size = args.batch_size or (256 if gpu else 16)


def _mib(run: Run) -> str:
    return "-" if run.peak_mib is None else f"{run.peak_mib:,.0f}"


def _pays_after(compiled: Run, eager: Run) -> str:
    """Steady steps after which the compiled run has won back its compile time."""
    saved = eager.step_s - compiled.step_s
    return f"{compiled.compile_s / saved:,.0f} steps" if saved > 0 else "never (not faster)"


def main() -> None:
    """Parse arguments, run every model in every mode and configuration and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument(
        "--modes", nargs="+", choices=["eager", "compiled"], default=["eager", "compiled"]
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=["32-true", "bf16-mixed"],
        help="CPU only: fp32, and/or conf/trainer/cpu.yaml (bf16-mixed, channels_last); "
        "default both where the CPU has native bf16, else 32-true",
    )
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 2)")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2, help="runs per side; the best counts")
    parser.add_argument(
        "--ref-ema",
        action="store_true",
        help="the reference updates timm's ModelEmaV3 every step, as ours updates its EMA",
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="CPU time, not wall time: with OMP_NUM_THREADS=1 TORCHINDUCTOR_COMPILE_THREADS=1, "
        "figures that hold on a busy machine",
    )
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run for CI")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    args.accelerator = args.device.type
    if args.precision and args.device.type != "cpu":
        parser.error("--precision is for the CPU: on a GPU the benchmark measures gpu.yaml")
    _sizes(args)
    if args.warmup < 2:
        parser.error("--warmup must be at least 2: step 1 is timed apart as the first step")
    configurations = _configurations(args)
    torch.backends.cudnn.benchmark = any(c.cudnn_benchmark for c in configurations.values())
    print(
        f"device={args.device} ({_device_name(args.device)}) image={args.image_size} "
        f"batch={args.batch_size} configurations={', '.join(configurations)} "
        f"steps={args.steps} (after {args.warmup}), best of {args.repeats} "
        f"torch={torch.__version__} timm={timm.__version__} threads={torch.get_num_threads()} "
        f"clock={'CPU time' if args.cpu_time else 'wall'} ref_ema={args.ref_ema}"
    )
    print(
        f"{'model':<21}{'mode':<10}{'configuration':<20}{'train: ours':>12}{'ref':>9}{'ratio':>7}"
        f"{'vs eager':>9}{'infer: ours':>12}{'ref':>9}{'ratio':>7}{'peak MiB ours':>14}{'ref':>8}"
    )
    torch.manual_seed(0)
    notes = []
    for name in args.models:
        images = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
        labels = torch.randint(0, args.num_classes, (args.batch_size,))
        reference = reference_model(name, args)
        ours_net = create_model(
            name, num_classes=args.num_classes, aux_head=False, width=args.width
        )
        eager: dict[tuple[str, str], Run] = {}
        for mode in args.modes:
            compiled = mode == "compiled"
            measures = {}
            for label, config in configurations.items():
                measures |= {
                    (label, "ours"): partial(ours_train, name, config, (images, labels), compiled),
                    (label, "ref"): partial(
                        reference_train, reference, config, (images, labels), compiled
                    ),
                    (label, "ours_inf"): partial(inference, ours_net, config, images, compiled),
                    (label, "ref_inf"): partial(inference, reference, config, images, compiled),
                }
            runs: dict[tuple[str, str], list[Run]] = {key: [] for key in measures}
            for repeat in range(args.repeats):
                # alternate who goes first: the first run of a process pays for warm-ups
                order = list(measures) if repeat % 2 == 0 else list(reversed(measures))
                for key in order:
                    runs[key].append(measures[key]())
            best = {key: best_of(values) for key, values in runs.items()}
            for label in configurations:
                ours, ref, ours_inf, ref_inf = (
                    best[label, side] for side in ("ours", "ref", "ours_inf", "ref_inf")
                )
                ref_eager = eager.get((label, "ref"), ref)
                print(
                    f"{name:<21}{mode:<10}{label:<20}{ours.rate:>12,.1f}{ref.rate:>9,.1f}"
                    f"{ours.rate / ref.rate:>7.2f}{ours.rate / ref_eager.rate:>9.2f}"
                    f"{ours_inf.rate:>12,.1f}{ref_inf.rate:>9,.1f}"
                    f"{ours_inf.rate / ref_inf.rate:>7.2f}{_mib(ours):>14}{_mib(ref):>8}"
                )
            notes += _speedups(name, mode, best, list(configurations))
            if compiled:
                notes += _compile_lines(name, best, eager, list(configurations))
            else:
                eager = best
    print("\n".join(notes))


def _speedups(
    name: str, mode: str, best: dict[tuple[str, str], Run], labels: list[str]
) -> list[str]:
    """Each side's speed-up of the other configurations over the first (fp32)."""
    base, *others = labels
    return [
        f"{name} {mode}: {label} over {base}: train ours "
        f"{best[label, 'ours'].rate / best[base, 'ours'].rate:.2f}x, ref "
        f"{best[label, 'ref'].rate / best[base, 'ref'].rate:.2f}x; inference ours "
        f"{best[label, 'ours_inf'].rate / best[base, 'ours_inf'].rate:.2f}x, ref "
        f"{best[label, 'ref_inf'].rate / best[base, 'ref_inf'].rate:.2f}x"
        for label in others
    ]


def _compile_lines(
    name: str,
    best: dict[tuple[str, str], Run],
    eager: dict[tuple[str, str], Run],
    labels: list[str],
) -> list[str]:
    """Compile time per side, and the steady steps after which compiling has paid."""
    lines = []
    for label in labels:
        parts = []
        for side in ("ours", "ref", "ours_inf", "ref_inf"):
            run = best[label, side]
            pays = f", pays after {_pays_after(run, eager[label, side])}" if eager else ""
            parts.append(f"{side} {run.compile_s:.1f} s{pays}")
        lines.append(f"compile time {name} {label}: " + "; ".join(parts))
    return lines


def _device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model from /proc/cpuinfo where there is one."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                bf16 = native_bf16()
                return line.split(":", 1)[1].strip() + (f", {bf16}" if bf16 else "")
    return platform.processor() or "cpu"


if __name__ == "__main__":
    main()
