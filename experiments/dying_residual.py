"""Inception-v4 paper sect. 3.3 on a CPU: residual_scale 1.0 against the paper's scales.

Trains the same Inception-ResNet twice on the built-in dataset with the paper's optimiser
(RMSProp, TF semantics, lr 0.045, eps 1.0, momentum 0.9, clipping 2.0), once with the paper's
per-stage residual scales (0.17 / 0.10 / 0.20) and once unscaled (1.0), with the
DyingResidualDetector watching both. Writes the curves and a summary into --out.

    python experiments/dying_residual.py --out docs/dying_residual
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from inception_lightning.callbacks import DyingResidualDetector
from inception_lightning.data import SyntheticDataModule
from inception_lightning.training.module import InceptionClassifier

CURVES = ("watch.dying/pre_pool_dead_fraction", "train/loss_main", "val/acc1")


def train(args: argparse.Namespace, scale: float | None) -> dict:
    """One run; returns its curves and what the detector did."""
    pl.seed_everything(args.seed)
    label = "paper" if scale is None else f"scale_{scale:g}"
    module = InceptionClassifier(
        model=args.model,
        num_classes=8,
        model_kwargs={"width": args.width, "residual_scale": scale, "aux_head": False},
    )
    detector = DyingResidualDetector(every_n_steps=args.every, patience=3, threshold=0.9)
    logger = TensorBoardLogger(args.out, name=label, version=0)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=args.epochs,
        gradient_clip_val=2.0,
        logger=logger,
        callbacks=[detector],
        enable_checkpointing=False,
        enable_progress_bar=False,
        log_every_n_steps=10,
    )
    data = SyntheticDataModule(image_size=args.image_size, num_samples=args.samples)
    trainer.fit(module, data)
    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    curves = {
        tag: [(e.step, e.value) for e in events.Scalars(tag)]
        for tag in (*CURVES, *_norm_ratio_tags(events))
        if tag in events.Tags()["scalars"]
    }
    return {"label": label, "curves": curves, "fired_steps": list(detector.fired_steps)}


def _norm_ratio_tags(events: EventAccumulator) -> list[str]:
    tags = [t for t in events.Tags()["scalars"] if t.endswith("/norm_ratio")]
    return [tags[0], tags[len(tags) // 2], tags[-1]] if tags else []


def plot(runs: list[dict], path: Path) -> None:
    """One panel per curve, both runs in each."""
    figure = Figure(figsize=(12, 3.2))
    tags = [t for t in CURVES if any(t in r["curves"] for r in runs)]
    for i, tag in enumerate(tags):
        axes = figure.add_subplot(1, len(tags), i + 1)
        for run in runs:
            steps, values = zip(*run["curves"].get(tag, [(0, float("nan"))]), strict=True)
            axes.plot(steps, values, label=run["label"], marker=".")
        axes.set_title(tag, fontsize=9)
        axes.set_xlabel("step")
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    """Run both arms and write curves.png and summary.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dying_residual"))
    parser.add_argument("--model", default="inception_resnet_v1")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--image-size", type=int, default=75)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [train(args, None), train(args, 1.0)]
    plot(runs, args.out / "curves.png")
    summary = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "runs": [
            {
                "label": r["label"],
                "fired_steps": r["fired_steps"],
                "max_pre_pool_dead_fraction": max(
                    (v for _, v in r["curves"].get(CURVES[0], [])), default=None
                ),
                "final": {t: r["curves"][t][-1] for t in r["curves"]},
            }
            for r in runs
        ],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
