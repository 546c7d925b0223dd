"""Images per second of the training dataloaders on this machine.

Measures the built-in dataset (`SyntheticDataModule`) and a folder of JPEGs that the script
writes to a temporary directory (`ImageFolderDataModule`, 299 px Inception preprocessing, default
worker count). The folder figure is also given as a ratio against a reference measured in the
same run: decoding and transforming the same files in one process, without a DataLoader.

    python benchmarks/dataloader.py            # about a minute
    python benchmarks/dataloader.py --tiny     # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image
from torch.utils.data import DataLoader

from inception_lightning.data import (
    ImageFolderDataModule,
    SyntheticDataModule,
    SyntheticDataset,
    load_rgb,
)


def images_per_second(loader: DataLoader) -> float:
    """Throughput over the second epoch; the first starts the (persistent) workers."""
    for _ in loader:
        pass
    count, start = 0, time.perf_counter()
    for _, labels in loader:
        count += len(labels)
    return count / (time.perf_counter() - start)


def write_jpeg_folder(root: Path, num_images: int, size: tuple[int, int]) -> None:
    """Built-in images upscaled to `size` and saved as JPEG, quality 90, one folder per class."""
    dataset = SyntheticDataset("train", num_images, num_classes=8, image_size=79)
    for index in range(num_images):
        path = root / dataset.classes[dataset.labels[index]] / f"{index:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(dataset.images[index].permute(1, 2, 0).numpy())
        image.resize(size, Image.BILINEAR).save(path, quality=90)


def main() -> None:
    """Parse arguments, run both measurements and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=None, help="folder loader workers")
    args = parser.parse_args()
    if args.tiny:
        num_samples, num_images, size, crop = 320, 128, (160, 120), 64
    else:
        num_samples, num_images, size, crop = 4000, 1024, (500, 375), 299

    start = time.perf_counter()
    synthetic = SyntheticDataModule(num_samples=num_samples)
    synthetic.setup("fit")
    render_s = time.perf_counter() - start
    synthetic_rate = images_per_second(synthetic.train_dataloader())

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpeg_folder(root, num_images, size)
        folder = ImageFolderDataModule(
            str(root), batch_size=args.batch_size, image_size=crop, num_workers=args.num_workers
        )
        start = time.perf_counter()
        folder.setup("fit")
        scan_s = time.perf_counter() - start
        loader = folder.train_dataloader()
        folder_rate = images_per_second(loader)
        records = folder.train_dataset.records
        start = time.perf_counter()
        for record in records:
            folder.train_transform(load_rgb(record.path))
        reference_rate = len(records) / (time.perf_counter() - start)

    rendered = len(synthetic.train_dataset) + len(synthetic.val_dataset)
    print(f"built-in 79 px, batch 32, 0 workers: {synthetic_rate:8.0f} images/s", end=" ")
    print(f"(rendered {rendered} images in {render_s:.1f} s)")
    print(f"JPEG {size[0]}x{size[1]} -> {crop} px, batch {args.batch_size},", end=" ")
    print(f"{loader.num_workers} workers: {folder_rate:8.0f} images/s", end=" ")
    print(f"(header scan of {num_images} files in {scan_s:.2f} s)")
    print(f"  reference, one process without DataLoader: {reference_rate:8.0f} images/s;", end=" ")
    print(f"ratio {folder_rate / reference_rate:.2f}")


if __name__ == "__main__":
    main()
