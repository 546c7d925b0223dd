"""Training and inference throughput of InceptionClassifier against timm in a plain loop.

Both sides run in the same process on the same batch, precision and memory format:

- ours: `InceptionClassifier` through the Lightning Trainer, a full step each (forward,
  backward, RMSpropTF, gradient clipping at 2.0, EMA update);
- reference: timm's model of the same architecture in a plain PyTorch loop with RMSpropTF,
  label smoothing and clipping (for IR-v1, which timm lacks, our own network in that loop).

Examples:
    python benchmarks/throughput.py --tiny                 # CI: proves it runs
    python benchmarks/throughput.py --device cpu           # small inputs on the CPU
    python benchmarks/throughput.py --device cuda          # 299 px, batch 256, bf16, channels_last
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext

import lightning.pytorch as pl
import timm
import torch
from timm.optim import RMSpropTF
from torch import Tensor, nn

from inception_lightning import create_model
from inception_lightning.ema import InceptionEMA
from inception_lightning.module import InceptionClassifier
from inception_lightning.registry import get_entry


class StepTimer(pl.Callback):
    """Wall time of the training steps after `warmup` steps."""

    def __init__(self, warmup: int, sync: Callable[[], None]) -> None:
        self.warmup, self.sync = warmup, sync
        self.start: float | None = None
        self.elapsed = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.warmup:
            self.sync()
            self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.sync()
        self.elapsed = time.perf_counter() - self.start


class RepeatBatch:
    """An iterable yielding the same batch `length` times (a list would read as many loaders)."""

    def __init__(self, batch: tuple[Tensor, Tensor], length: int) -> None:
        self.batch, self.length = batch, length

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (self.batch for _ in range(self.length))

    def __len__(self) -> int:
        return self.length


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _peak_mib(device: torch.device) -> str:
    if device.type != "cuda":
        return "-"
    return f"{torch.cuda.max_memory_allocated() / 2**20:,.0f}"


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def ours_train(name: str, args: argparse.Namespace, batch: tuple[Tensor, Tensor]) -> float:
    """Images/s of InceptionClassifier trained through the Trainer."""
    module = InceptionClassifier(
        model=name,
        num_classes=args.num_classes,
        model_kwargs={"aux_head": False, "width": args.width},
        channels_last=args.channels_last,
        compile_model=args.compile,
    )
    timer = StepTimer(args.warmup, _sync(args.device))
    loader = RepeatBatch(batch, args.warmup + args.steps)
    trainer = pl.Trainer(
        accelerator=args.device.type,
        devices=1,
        precision=args.precision,
        max_steps=args.warmup + args.steps,
        gradient_clip_val=2.0,
        callbacks=[InceptionEMA(decay=0.9999), timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loader)
    return args.steps * batch[0].shape[0] / timer.elapsed


def reference_model(name: str, args: argparse.Namespace) -> nn.Module:
    """timm's model of the same architecture, or ours where timm has none."""
    timm_name = get_entry(name).timm_name
    if timm_name is None or args.width != 1.0:
        return create_model(name, num_classes=args.num_classes, aux_head=False, width=args.width)
    return timm.create_model(timm_name.split(".")[0], num_classes=args.num_classes)


def reference_train(model: nn.Module, args: argparse.Namespace, batch: tuple[Tensor, ...]) -> float:
    """Images/s of a plain PyTorch training loop."""
    model = model.to(args.device).train()
    step_model = torch.compile(model) if args.compile else model
    optimizer = RMSpropTF(model.parameters(), lr=0.045, alpha=0.9, eps=1.0, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    images, labels = (t.to(args.device) for t in batch)
    sync = _sync(args.device)
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            start = time.perf_counter()
        with _autocast(args):
            loss = loss_fn(step_model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optimizer.step()
    sync()
    return args.steps * images.shape[0] / (time.perf_counter() - start)


@torch.inference_mode()
def inference(model: nn.Module, args: argparse.Namespace, images: Tensor) -> float:
    """Images/s of eval-mode forward passes."""
    model = model.to(args.device).eval()
    images = images.to(args.device)
    sync = _sync(args.device)
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            start = time.perf_counter()
        with _autocast(args):
            model(images)
    sync()
    return args.steps * images.shape[0] / (time.perf_counter() - start)


def _autocast(args: argparse.Namespace) -> torch.autocast | nullcontext:
    if args.precision == "bf16-mixed":
        return torch.autocast(args.device.type, dtype=torch.bfloat16)
    return nullcontext()


def main() -> None:
    """Parse arguments, run every model and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--models",
        nargs="+",
        default=["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2"],
    )
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--compile", action="store_true", help="torch.compile both sides")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run for CI")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    gpu = args.device.type == "cuda"
    if args.tiny:
        args.models, args.width, args.steps, args.warmup = ["inception_v3"], 0.125, 2, 1
        args.num_classes = 10
    args.image_size = args.image_size or (299 if gpu else 128)
    args.batch_size = args.batch_size or (256 if gpu else 16)
    args.image_size = 75 if args.tiny else args.image_size
    args.batch_size = 4 if args.tiny else args.batch_size
    args.precision = "bf16-mixed" if gpu else "32-true"
    args.channels_last = gpu
    print(
        f"device={args.device} image={args.image_size} batch={args.batch_size} "
        f"precision={args.precision} channels_last={args.channels_last} compile={args.compile} "
        f"steps={args.steps} (after {args.warmup} warm-up) torch={torch.__version__}"
    )
    header = (
        f"{'model':<22}{'ours img/s':>12}{'ref img/s':>12}{'ratio':>8}"
        f"{'ours inf':>11}{'ref inf':>11}{'ratio':>8}{'peak MiB':>10}"
    )
    print(header)
    torch.manual_seed(0)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    for name in args.models:
        images = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
        images = images.contiguous(memory_format=memory_format)
        labels = torch.randint(0, args.num_classes, (args.batch_size,))
        _reset_peak(args.device)
        ours = ours_train(name, args, (images, labels))
        peak = _peak_mib(args.device)
        reference = reference_model(name, args).to(memory_format=memory_format)
        ref = reference_train(reference, args, (images, labels))
        ours_net = create_model(
            name, num_classes=args.num_classes, aux_head=False, width=args.width
        ).to(memory_format=memory_format)
        ours_inf = inference(ours_net, args, images)
        ref_inf = inference(reference, args, images)
        print(
            f"{name:<22}{ours:>12,.1f}{ref:>12,.1f}{ours / ref:>8.2f}"
            f"{ours_inf:>11,.1f}{ref_inf:>11,.1f}{ours_inf / ref_inf:>8.2f}{peak:>10}"
        )


if __name__ == "__main__":
    main()
