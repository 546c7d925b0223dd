"""Grad-CAM cost: the wrapper's throughput against Captum called directly, and the GradCam
callback's cost per validation epoch.

    python benchmarks/gradcam.py            # inception_v3, 299 px
    python benchmarks/gradcam.py --tiny     # seconds, for CI

Throughputs are medians over `--repeats`, measured in the same run; the target is a wrapper
within 10% of Captum (ratio >= 0.90).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from _common import median_times
from captum.attr import LayerAttribution, LayerGradCam

from inception_lightning.callbacks import GradCam
from inception_lightning.data import LoaderOptions, SyntheticDataModule
from inception_lightning.explain import GradCAMMap, SampleOptions, ScoreOptions
from inception_lightning.training import InceptionClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model and inputs (CI)")
    parser.add_argument("--model", default="inception_v3")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16, help="deletion/insertion steps")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.tiny:
        args.width, args.size, args.images, args.batch_size = 0.0625, 79, 4, 4
        args.repeats, args.steps = 1, 2  # after the warm-up round: one timed round, each ratio
    stem = 79 if args.size < 150 else 299
    torch.manual_seed(0)
    kwargs = {"width": args.width, "stem": stem, "aux_head": False}
    module = InceptionClassifier(args.model, num_classes=8, model_kwargs=kwargs)
    model = module.model.to(args.device).eval()
    x = torch.randn(args.images, 3, args.size, args.size, device=args.device)
    targets = torch.randint(0, 8, (args.images,)).tolist()
    cam = GradCAMMap(model, batch_size=args.batch_size)
    captum = LayerGradCam(model, model.get_submodule(cam.layer))

    def direct() -> None:
        for s in range(0, args.images, args.batch_size):
            raw = captum.attribute(
                x[s : s + args.batch_size],
                target=targets[s : s + args.batch_size],
                relu_attributions=True,
            )
            LayerAttribution.interpolate(raw, (args.size, args.size), "bilinear")

    def wrapped() -> None:
        cam.attribute(x, targets)

    def sync(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            fn()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        return run

    t_direct, t_wrapped = median_times([sync(direct), sync(wrapped)], args.repeats)
    print(f"{args.model} width={args.width} {args.size}px, {args.images} images, {args.device}")
    print(f"captum direct : {args.images / t_direct:8.1f} images/s")
    print(f"GradCAMMap       : {args.images / t_wrapped:8.1f} images/s")
    print(f"ratio         : {t_direct / t_wrapped:8.3f} (target >= 0.90)")

    data = SyntheticDataModule(
        num_classes=8,
        image_size=args.size,
        num_samples=2 * args.images,
        val_fraction=0.5,
        loader=LoaderOptions(batch_size=args.batch_size),
    )
    sample = SampleOptions(per_class=args.images, max_samples=args.images)
    callback = GradCam(sample=sample, scores=ScoreOptions(steps=args.steps))
    runs = []
    with tempfile.TemporaryDirectory() as root:
        for callbacks in ([], [callback]):
            trainer = pl.Trainer(
                default_root_dir=root,
                accelerator="gpu" if args.device.startswith("cuda") else "cpu",
                devices=1,
                callbacks=callbacks,
                enable_progress_bar=False,
                enable_model_summary=False,
                logger=pl.loggers.TensorBoardLogger(root),
            )
            runs.append(lambda t=trainer: t.validate(module, datamodule=data, verbose=False))
        without, with_cam = median_times(runs, args.repeats)
    explained = len(next(iter(callback.last.values())).indices)
    print(f"val epoch     : {without:8.3f} s without GradCam, {with_cam:.3f} s with")
    print(
        f"callback cost : {with_cam - without:8.3f} s per run ({explained} images: sample and "
        f"misclassified; maps, {args.steps}-step deletion/insertion, image grid)"
    )


if __name__ == "__main__":
    main()
