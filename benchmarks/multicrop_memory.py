"""Peak memory of 144-crop testing: Inception-v3 at 299 px, one batch of 8 photos.

`trainer.test` runs on one batch of 8 JPEGs (500x375, a generated folder) through
`ImageFolderDataModule`, on the CPU, loader in the process. The figure is the process's peak
resident memory during the test less its peak before it (model built, data set up, a
single-crop batch already run), from `getrusage`: what 144 views of a batch add on top of
one. It measures this code: `test_crops` on the datamodule, squares in the loader, views cut
one at a time on the device. The code before it (`test_crops` and `test_crop_size` on the
module, every view of the centre-cropped batch made first) was measured by this script up to
commit c69e6a8, which ran on either; the module no longer takes those arguments.

    python benchmarks/multicrop_memory.py            # Inception-v3, 299 px, batch 8, 144 crops
    python benchmarks/multicrop_memory.py --tiny     # a tiny network, 79 px, 12 crops
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Trainer
from PIL import Image

from inception_lightning.data import CropOptions, ImageFolderDataModule, LoaderOptions
from inception_lightning.training.module import InceptionClassifier


def peak_mib() -> float:
    """The process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_folder(root: Path, per_class: int, size: tuple[int, int]) -> Path:
    """train/, val/ and test/ with two classes of random JPEGs of `size` (width, height)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for name in ("a", "b"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
    return root


def run(args: argparse.Namespace, root: Path) -> None:
    model_kwargs = {"aux_head": False, **({"width": 0.0625, "stem": 79} if args.tiny else {})}
    crop, loader = CropOptions(image_size=args.size), LoaderOptions(args.batch, num_workers=0)
    single = ImageFolderDataModule(str(root), crop=crop, loader=loader)
    data = ImageFolderDataModule(str(root), crop=crop, test_crops=args.crops, loader=loader)
    module = InceptionClassifier("inception_v3", num_classes=2, model_kwargs=model_kwargs)
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        limit_test_batches=1,
    )  # fmt: skip
    trainer.test(module, datamodule=single, verbose=False)
    before = peak_mib()
    start = time.perf_counter()
    trainer.test(module, datamodule=data, verbose=False)
    seconds = time.perf_counter() - start
    peak = peak_mib()
    print(
        f"{args.crops} crops at {args.size} px, batch {args.batch}, test_crops on the datamodule "
        f"(views cut one at a time): peak RSS {peak:.0f} MiB, {peak - before:.0f} MiB above the "
        f"single-crop peak ({before:.0f} MiB); {seconds:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a quick check that it runs")
    args = parser.parse_args()
    args.size, args.batch, args.crops = (79, 2, 12) if args.tiny else (299, 8, 144)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        run(args, write_folder(Path(tmp), args.batch // 2, (500, 375)))


if __name__ == "__main__":
    main()
