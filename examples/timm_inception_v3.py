"""Watch and explain timm's Inception-v3 in a plain Lightning project, logged to MLflow.

`Classifier` below is the LightningModule you already have: a timm network, cross-entropy and
an optimiser, nothing of inception_lightning. The package only adds callbacks to the Trainer;
each one finds the Inception network inside the module by itself (pass `network="net"` to name
it) and logs to any logger, here an MLflow run:

- `BranchActivationStats`: per-branch statistics of every Inception block, by the paper's
  names (`watch.branch.mean.17x17/mixed_6b/b7x7dbl`), and a heat map of them all;
- `GradCam`: Grad-CAM overlays and scores of a fixed validation sample every epoch, and an
  attribution report at the end, kept as the run's artifacts (`report/index.html`);
- `InceptionEMA`: an exponential moving average of the weights with TF's warm-up, swapped in
  for validation and kept in the checkpoints.

    python examples/timm_inception_v3.py --data DIR --tracking-uri http://127.0.0.1:5000

`DIR` holds `train/<class>/*.jpg` and `val/<class>/*.jpg` (or one tree, split 90/10).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import lightning.pytorch as pl
import timm
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import MLFlowLogger
from torch import Tensor

from inception_lightning.callbacks import BranchActivationStats, GradCam, InceptionEMA
from inception_lightning.data import CropOptions, ImageFolderDataModule, LoaderOptions
from inception_lightning.explain import ReportOptions, SampleOptions, SanityOptions


class Classifier(pl.LightningModule):
    """timm's Inception-v3 with cross-entropy and AdamW."""

    def __init__(self, num_classes: int, lr: float = 1e-3, pretrained: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = timm.create_model("inception_v3", pretrained=pretrained, num_classes=num_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.log("val/loss", F.cross_entropy(logits, labels))
        self.log("val/acc", (logits.argmax(dim=1) == labels).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def main(argv: Sequence[str] | None = None) -> None:
    """Train on a folder of images and log everything to an MLflow run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the image folder")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow's store")
    parser.add_argument("--experiment", default="timm_inception_v3")
    parser.add_argument("--image-size", type=int, default=299, help="75 is the smallest")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=-1, help="-1: the epochs decide")
    parser.add_argument("--log-every", type=int, default=50, help="optimiser steps per log")
    parser.add_argument("--workers", type=int, default=None, help="loader processes")
    parser.add_argument("--pretrained", action="store_true", help="timm's ImageNet weights")
    args = parser.parse_args(argv)

    data = ImageFolderDataModule(
        args.data,
        crop=CropOptions(image_size=args.image_size),
        loader=LoaderOptions(batch_size=args.batch_size, num_workers=args.workers),
    )
    model = Classifier(num_classes=len(data.classes), pretrained=args.pretrained)
    callbacks = [
        BranchActivationStats(every_n_steps=args.log_every),
        GradCam(
            sample=SampleOptions(per_class=2, max_samples=16),
            sanity=SanityOptions(samples=2),
            report=ReportOptions(per_class=4),
        ),
        InceptionEMA(decay=0.999),
    ]
    logger = MLFlowLogger(experiment_name=args.experiment, tracking_uri=args.tracking_uri)
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        max_steps=args.max_steps,
        log_every_n_steps=args.log_every,
        callbacks=callbacks,
        logger=logger,
    )
    trainer.fit(model, datamodule=data)
    print(f"MLflow run {logger.run_id} at {args.tracking_uri}")


if __name__ == "__main__":
    main()
