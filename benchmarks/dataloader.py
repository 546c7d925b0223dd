"""Images per second of the training dataloaders on this machine, and whether they feed a GPU.

Measures the built-in dataset (`SyntheticDataModule`) and a folder of JPEGs that the script
writes to a temporary directory (`ImageFolderDataModule`, 299 px Inception preprocessing, default
worker count). The folder figure is also given as a ratio against a reference measured in the
same run: decoding and cropping the same files in one process, on one thread, without a
DataLoader.

The decode section then times, per image on one core, the old path (PIL decode, crop on the PIL
image, float normalisation in the worker) against the new one (torchvision decode to uint8, crop
on the uint8 tensor; normalisation happens in batches on the device after the transfer), and
estimates from the new path's one-core rate what an `--host-cores` host's default workers
deliver against a GPU step rate of `--gpu-rate` images/s (Inception-v3, H100, bf16, compiled).

With `--streaming` it compares instead the two ways to train from one folder of small JPEGs
(`--stream-images`, 20,000 by default): `ImageFolderDataModule` on the folder, against
`StreamingImageDataModule` on the LitData chunks `inception-lightning convert` writes from it,
read from a local path and from a `local:` URL (LitData's stand-in for object storage: chunks
copied into a cache as from `s3://`). Each path is timed from a new datamodule to its first
training batch (the folder's header scan, uncached, included; the one-off conversion is timed
apart), then over the rest of that epoch, with the same workers; the streaming figures are
given as ratios against the folder's.

    python benchmarks/dataloader.py              # about a minute
    python benchmarks/dataloader.py --streaming  # a few minutes (needs the litdata extra)
    python benchmarks/dataloader.py --tiny       # a few seconds, for CI (both parts)
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from inception_lightning.data import (
    CropOptions,
    FileOptions,
    ImageFolderDataModule,
    ImageRecord,
    LoaderOptions,
    SyntheticDataModule,
    SyntheticDataset,
    decode_rgb,
    load_rgb,
)
from inception_lightning.data.loading import default_num_workers


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


def stage_ms(records: list[ImageRecord], stages: list[Callable]) -> list[float]:
    """Mean milliseconds per image of each stage, each fed the previous one's output."""
    totals = [0.0] * len(stages)
    for record in records:
        value: object = record.path
        for i, stage in enumerate(stages):
            start = time.perf_counter()
            value = stage(value)
            totals[i] += time.perf_counter() - start
    return [1000 * total / len(records) for total in totals]


@dataclass
class PathCosts:
    """Milliseconds per image on one core, by stage."""

    old: list[float]  # PIL decode, crop on the PIL image, float normalisation
    new: list[float]  # torchvision decode, crop on the uint8 tensor
    normalise: float  # the new path's normalisation, batched, after the transfer

    @property
    def old_rate(self) -> float:
        return 1000 / sum(self.old)

    @property
    def new_rate(self) -> float:
        return 1000 / sum(self.new)


def path_costs(folder: ImageFolderDataModule, batch_size: int) -> PathCosts:
    """Both paths over the training images, one thread, as in a loader worker."""
    records = folder.train_dataset.records
    p = folder.preprocessing
    old_normalise = v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(p.mean, p.std)]
    )
    crop = folder.train_transform  # v2 transforms take PIL images and tensors alike
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stage_ms(records[:8], [decode_rgb, crop])  # warm-up
        old = stage_ms(records, [load_rgb, crop, old_normalise])
        new = stage_ms(records, [decode_rgb, crop])
        batch = torch.stack([crop(decode_rgb(r.path)) for r in records[:batch_size]])
        folder.normalize(batch)  # warm-up
        start = time.perf_counter()
        for _ in range(3):
            folder.normalize(batch)
        normalise = 1000 * (time.perf_counter() - start) / (3 * len(batch))
    finally:
        torch.set_num_threads(threads)
    return PathCosts(old, new, normalise)


def print_decode(
    costs: PathCosts, loader_rate: float, workers: int, args: argparse.Namespace
) -> None:
    """The per-image costs, the loader's share of them, and the estimate for the GPU host."""
    old, new = costs.old, costs.new
    # the share of its workers' one-core rates the loader delivers here, main process included
    efficiency = min(1.0, loader_rate / (max(1, workers) * costs.new_rate))
    host_workers = default_num_workers(cpus=args.host_cores)
    estimate = costs.new_rate * host_workers * efficiency
    before = costs.old_rate * min(8, args.host_cores) * efficiency
    needed = math.ceil(args.gpu_rate / (costs.new_rate * efficiency))
    verdict = "keeps up with" if estimate >= args.gpu_rate else "falls short of"
    lines = [
        f"old path: PIL decode {old[0]:.2f} ms + PIL crop {old[1]:.2f} ms + float normalise "
        f"{old[2]:.2f} ms = {sum(old):.2f} ms ({costs.old_rate:.0f} images/s)",
        f"new path: torchvision decode {new[0]:.2f} ms + uint8 crop {new[1]:.2f} ms = "
        f"{sum(new):.2f} ms ({costs.new_rate:.0f} images/s per worker); "
        f"ratio {costs.new_rate / costs.old_rate:.2f} against the old path",
        f"normalise in batches after the transfer (here on the CPU): "
        f"{costs.normalise:.3f} ms per image",
        f"DataLoader, {workers} workers: {loader_rate:.0f} images/s, "
        f"{efficiency:.2f} of {max(1, workers)} x the per-worker rate",
        f"{args.host_cores}-core host, {host_workers} default workers: ~{estimate:.0f} images/s "
        f"(old path at its default 8 workers: ~{before:.0f})",
        f"{verdict} a GPU at {args.gpu_rate:.0f} images/s, which needs {needed} workers "
        f"({needed + 1} cores with the main process)",
    ]
    print("\n".join(f"  {line}" for line in lines))


def write_small_jpegs(root: Path, num_images: int, size: tuple[int, int]) -> None:
    """`num_images` distinct JPEGs, quality 90, in class folders: 500 built-in images, each
    written shifted by a different number of pixels (rendering 20,000 would take minutes)."""
    dataset = SyntheticDataset("train", min(500, num_images), num_classes=8, image_size=79)
    for index in range(num_images):
        base = index % len(dataset)
        pixels = dataset.images[base].permute(1, 2, 0).numpy()
        shifted = np.roll(pixels, shift=index // len(dataset), axis=1)
        path = root / dataset.classes[dataset.labels[base]] / f"{index:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(shifted).resize(size, Image.BILINEAR).save(path, quality=90)


@dataclass
class FirstEpoch:
    """A training loader's time to its first batch and its rate over the rest of that epoch."""

    first_batch_s: float
    images_per_s: float
    images: int


def first_epoch(make_loader: Callable[[], DataLoader]) -> FirstEpoch:
    """Time `make_loader()` (a new datamodule, set up) to the first batch, then the epoch."""
    start = time.perf_counter()
    batches = iter(make_loader())
    _, labels = next(batches)
    first_batch_s = time.perf_counter() - start
    count, start = 0, time.perf_counter()
    for _, labels in batches:
        count += len(labels)
    return FirstEpoch(first_batch_s, count / (time.perf_counter() - start), count + len(labels))


def compare_streaming(args: argparse.Namespace, num_images: int, size: tuple[int, int]) -> None:
    """The folder path against LitData's on the same images; see the module docstring."""
    from inception_lightning.data import StreamingImageDataModule
    from inception_lightning.data.streaming.chunk_writer import write_chunks
    from inception_lightning.data.streaming.streaming_options import StreamOptions

    crop = 64
    workers = default_num_workers() if args.num_workers is None else args.num_workers
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        write_small_jpegs(root, num_images, size)

        def folder_loader() -> DataLoader:
            data = ImageFolderDataModule(
                str(root),
                crop=CropOptions(image_size=crop),
                files=FileOptions(scan_cache_dir=str(Path(tmp) / "scan-cache")),
                loader=LoaderOptions(batch_size=args.batch_size, num_workers=workers),
            )
            data.setup("fit")
            return data.train_dataloader()

        folder = first_epoch(folder_loader)
        start = time.perf_counter()
        write_chunks(root, Path(tmp) / "chunks", scan_cache_dir=str(Path(tmp) / "convert-cache"))
        convert_s = time.perf_counter() - start
        chunks = sum(1 for _ in (Path(tmp) / "chunks" / "train").glob("chunk-*.bin"))

        def stream_loader(input_dir: str) -> Callable[[], DataLoader]:
            def make() -> DataLoader:
                data = StreamingImageDataModule(
                    input_dir, LoaderOptions(args.batch_size, workers), crop=CropOptions(crop),
                    stream=StreamOptions(cache_dir=str(Path(tmp) / "stream-cache")),
                )  # fmt: skip
                data.setup("fit")
                return data.train_dataloader()

            return make

        local = first_epoch(stream_loader(str(Path(tmp) / "chunks")))
        remote = first_epoch(stream_loader(f"local:{Path(tmp) / 'chunks'}"))

    print(f"{num_images:,} JPEG {size[0]}x{size[1]} -> {crop} px, batch {args.batch_size},", end="")
    print(f" loader workers {workers}; first epoch after its first batch, and time to it:")
    rows = [("folder (ImageFolderDataModule)", folder)]
    rows += [("LitData chunks, local path", local), ("LitData chunks, local: URL", remote)]
    for name, result in rows:
        print(
            f"  {name:32s} {result.images_per_s:7.0f} images/s "
            f"(x{result.images_per_s / folder.images_per_s:.2f})   "
            f"first batch {result.first_batch_s:6.2f} s "
            f"(x{result.first_batch_s / folder.first_batch_s:.2f})   {result.images} images"
        )
    print(f"  convert, once: {convert_s:.1f} s ({chunks} chunks of at most 64 MB for train/)")


def main() -> None:
    """Parse arguments, run the measurements and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds, for CI")
    parser.add_argument(
        "--streaming", action="store_true", help="folder against LitData chunks instead"
    )
    parser.add_argument("--stream-images", type=int, default=20_000, help="with --streaming")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=None, help="folder loader workers")
    parser.add_argument("--host-cores", type=int, default=16, help="CPU cores of the GPU host")
    parser.add_argument("--gpu-rate", type=float, default=3300.0, help="GPU images/s to feed")
    args = parser.parse_args()
    if args.streaming or args.tiny:
        compare_streaming(args, 400 if args.tiny else args.stream_images, (120, 90))
        if args.streaming:
            return
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
            str(root),
            crop=CropOptions(image_size=crop),
            loader=LoaderOptions(batch_size=args.batch_size, num_workers=args.num_workers),
        )
        start = time.perf_counter()
        folder.setup("fit")
        scan_s = time.perf_counter() - start
        loader = folder.train_dataloader()
        folder_rate = images_per_second(loader)
        costs = path_costs(folder, args.batch_size)

    rendered = len(synthetic.train_dataset) + len(synthetic.val_dataset)
    print(f"built-in 79 px, batch 32, 0 workers: {synthetic_rate:8.0f} images/s", end=" ")
    print(f"(rendered {rendered} images in {render_s:.1f} s)")
    print(f"JPEG {size[0]}x{size[1]} -> {crop} px, batch {args.batch_size},", end=" ")
    print(f"{loader.num_workers} workers: {folder_rate:8.0f} images/s", end=" ")
    print(f"(header scan of {num_images} files in {scan_s:.2f} s)")
    print(f"  reference, one process without DataLoader: {costs.new_rate:8.0f} images/s;", end=" ")
    print(f"ratio {folder_rate / costs.new_rate:.2f}")
    print(f"decode, per image on one core, no DataLoader ({size[0]}x{size[1]} JPEG -> {crop} px):")
    print_decode(costs, folder_rate, loader.num_workers, args)


if __name__ == "__main__":
    main()
