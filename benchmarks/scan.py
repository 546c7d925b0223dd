"""The start-up scan of an image folder: the first scan against a scan from the cache.

For each tree size, the script writes a class-per-folder tree of small JPEGs to a temporary
directory (dated an hour back: files modified in the 2 s before a scan are not cached, see
`data.scan_cache`), then times `ImageFolderDataModule.setup` in this process: the first scan
(no cache: every header checked, the cache written) and the scan with the cache in place (every
file listed and stat'ed, nothing checked), both building the datasets, and, as a reference, the
listing alone as the scan made it before it had a cache. The goal is a cached
scan under 5% of the first. Each figure is the best of `--repeats` runs (the first scan is
repeated by deleting the cache), per file and as the ratio cached / first, in wall time and in
CPU time of all threads (on a busy machine the wall-time ratio also reflects how the first
scan's threads compete with other processes for the cores). The tree is deleted afterwards.

    python benchmarks/scan.py                      # 2,000, 20,000 and 100,000 files
    python benchmarks/scan.py --sizes 20000        # one size
    python benchmarks/scan.py --tiny               # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inception_lightning.data import (
    CropOptions,
    FileOptions,
    ImageFolderDataModule,
    LoaderOptions,
)

CLASSES = 10
VARIANTS = 16  # distinct JPEG payloads, cycled: the scan reads headers, not pixels


def jpeg_payloads(size: tuple[int, int], count: int) -> list[bytes]:
    """`count` different noise JPEGs of `size` (width, height)."""
    rng = np.random.default_rng(0)
    payloads = []
    for _ in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        payloads.append(buffer.getvalue())
    return payloads


def write_tree(root: Path, num_files: int, size: tuple[int, int]) -> None:
    """`root/train/<class>/<i>.jpg` and a tenth as many under `root/val/`, dated an hour back."""
    payloads = jpeg_payloads(size, VARIANTS)
    past = time.time() - 3600
    num_val = num_files // 10
    for index in range(num_files):
        split = "val" if index < num_val else "train"
        folder = root / split / f"class_{index % CLASSES:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:06d}.jpg"
        path.write_bytes(payloads[index % VARIANTS])
        os.utime(path, (past, past))


def best_time(make: Callable[[], Callable[[], object]], repeats: int) -> tuple[float, float]:
    """The least wall and the least CPU seconds (all threads) of `repeats` runs of `make()()`;
    `make` itself is not timed."""
    walls, cpus = [], []
    for _ in range(repeats):
        run = make()
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def listing_before_the_cache(root: Path) -> None:
    """The reference: how the scan listed a tree before it had a cache, without checking.

    `Path.rglob` and `is_file` per file, sorted, hidden files left out (the code of
    `data.scan.list_files` before the cache); the cached scan does this and more.
    """
    for split in ("train", "val"):
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            sorted(
                p
                for p in class_dir.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(class_dir).parts)
            )


def measure(num_files: int, size: tuple[int, int], repeats: int) -> dict[str, Any]:
    """Wall and CPU seconds of the first and the cached scan of a new tree of JPEGs."""
    with tempfile.TemporaryDirectory(prefix="scan-bench-") as folder:
        root, cache_dir = Path(folder) / "data", Path(folder) / "cache"
        write_tree(root, num_files, size)

        def setup(cached: bool) -> Callable[[], object]:
            if not cached:
                shutil.rmtree(cache_dir, ignore_errors=True)
            datamodule = ImageFolderDataModule(
                str(root),
                crop=CropOptions(image_size=32),
                files=FileOptions(scan_cache_dir=str(cache_dir)),
                loader=LoaderOptions(num_workers=0),
            )
            return lambda: datamodule.setup("fit")

        first = best_time(lambda: setup(cached=False), repeats)
        cached = best_time(lambda: setup(cached=True), repeats)  # the last first scan's cache
        listing = best_time(lambda: lambda: listing_before_the_cache(root), repeats)
        shutil.rmtree(root)
    return {"first": first, "cached": cached, "listing": listing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 100_000])
    parser.add_argument("--image-size", type=int, nargs=2, default=[64, 48], metavar=("W", "H"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="200 and 1,000 files, 1 repeat")
    args = parser.parse_args()
    if args.tiny:
        args.sizes, args.repeats = [200, 1_000], 1
    print(f"{os.cpu_count()} CPUs; JPEGs of {args.image_size[0]}x{args.image_size[1]} px")
    print("| files | first scan | per file | cached scan | per file | cached / first "
          "| CPU per file: first, cached, old listing | cached / first (CPU) |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    for n in args.sizes:
        m = measure(n, tuple(args.image_size), args.repeats)
        (first, first_cpu), (cached, cached_cpu), listing_cpu = (
            m["first"],
            m["cached"],
            m["listing"][1],
        )
        print(
            f"| {n:,} | {first:.2f} s | {first / n * 1e3:.3f} ms | {cached:.3f} s "
            f"| {cached / n * 1e6:.1f} us | {cached / first:.1%} | {first_cpu / n * 1e3:.3f} ms, "
            f"{cached_cpu / n * 1e6:.1f} us, {listing_cpu / n * 1e6:.1f} us "
            f"| {cached_cpu / first_cpu:.1%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
