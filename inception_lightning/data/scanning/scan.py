"""Checking a class-per-folder tree before training: structure first, then every file's header.

Only candidate images are listed: files with an image extension, not hidden
(`candidates.is_candidate`, the one rule everywhere).

A file is bad when it is empty, is not an image PIL can identify, exceeds PIL's
decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`), fails `Image.verify()`, or is a
truncated JPEG. The scan never decodes pixels: `Image.open` reads the header and `verify()`
checks PNG chunk checksums through the end chunk (so a truncated PNG fails) but does nothing for
JPEG, so for JPEG the scan also requires the end-of-image marker (FF D9) in the file's last KiB;
a truncated JPEG ends inside its entropy-coded data, where that byte pair cannot occur. A
truncated file of another format passes the scan and fails when decoded, with an error naming it.

`check_files` keeps the results in a `data.scan_cache.ScanCache`, so a later scan of the same
folder checks only the files whose size or mtime changed.
"""

from __future__ import annotations

import gc
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from inception_lightning.console import track
from inception_lightning.data.errors import DatasetError, printable
from inception_lightning.data.scanning.candidates import annotation_masks, is_candidate, is_hidden
from inception_lightning.data.scanning.scan_cache import FileStat, Result, ScanCache, cached_result


@dataclass(frozen=True)
class ImageRecord:
    """A readable image: its path, class index and size `(width, height)` from the header."""

    path: Path
    label: int
    size: tuple[int, int]


@dataclass(frozen=True)
class BadFile:
    """An unusable file and why."""

    path: Path
    reason: str

    def line(self, separator: str = ": ") -> str:
        """`path<separator>reason`, with control characters in the path escaped."""
        return f"{printable(self.path)}{separator}{self.reason}"


def check_image(path: Path) -> tuple[int, int] | str:
    """The image's `(width, height)`, or the reason it is bad, from its header and tail."""
    if path.stat().st_size == 0:
        return "empty file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                size, image_format = image.size, image.format
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return f"decompression bomb: {error}"
    except UnidentifiedImageError:
        return "not an image: PIL cannot identify its format"
    except (OSError, SyntaxError, ValueError) as error:
        return f"corrupt image: {error}"
    if image_format == "JPEG" and not _has_jpeg_end(path):
        return "truncated JPEG: no end-of-image marker"
    return size


def _has_jpeg_end(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - 1024))
        return b"\xff\xd9" in file.read()


def find_classes(split_dir: Path) -> list[str]:
    """Sorted class-folder names under `split_dir`; at least two are required."""
    if not split_dir.is_dir():
        raise FileNotFoundError(f"dataset folder does not exist or is a file: {split_dir}")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not is_hidden(p.name))
    if not classes:
        raise DatasetError(f"no class folders in {split_dir}: expected {split_dir}/<class>/<image>")
    if len(classes) == 1:
        raise DatasetError(
            f"only one class folder, {classes[0]!r}, in {split_dir}: classification needs two"
        )
    return classes


def label_space(found: list[str], classes: list[str] | None, where: Path | str) -> list[str]:
    """The classes to label by: `found` (the data's), or a model's `classes` that include them.

    A dataset whose classes are a subset of a model's is labelled by the model's indices, by
    name; any class the model does not know is an error naming it.
    """
    if classes is None:
        return found
    unknown = [name for name in found if name not in classes]
    if unknown:
        raise DatasetError(
            f"{where} has classes {unknown} that the model does not know (its classes: "
            f"{list(classes)}): use a folder of the model's classes (a subset is fine)"
        )
    return list(classes)


def list_files(
    split_dir: Path, classes: list[str], root: Path | None = None
) -> dict[str, list[FileStat]]:
    """Every candidate image (`candidates.is_candidate`) under each class folder of `split_dir`,
    sorted by path, with its size and mtime from the one `stat` the listing makes (symlinked
    files count; symlinked folders are not entered, as `Path.rglob` does).

    Args:
        split_dir: a class-per-folder tree.
        classes: the training classes.
        root: the folder the files' cache keys are relative to; None: `split_dir`.

    Raises:
        DatasetError: for a class folder without image files, or not among `classes`.
    """
    within = "." if root is None else split_dir.relative_to(root).as_posix()
    prefix = "" if within == "." else f"{within}/"
    files = {}
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not is_hidden(p.name)):
        if class_dir.name not in classes:
            raise DatasetError(
                f"class folder {class_dir} is not a training class; training classes: {classes}"
            )
        found: list[FileStat] = []
        _walk(class_dir, prefix + class_dir.name, found)
        if not found:
            raise DatasetError(f"class folder {class_dir} has no image files")
        files[class_dir.name] = found
    return files


def _walk(folder: Path, key: str, found: list[FileStat]) -> None:
    """Append the candidate images under `folder` to `found`, depth first in name order (= path
    order)."""
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        name = entry.name
        if is_hidden(name):
            continue
        if entry.is_dir(follow_symlinks=False):
            _walk(folder / name, f"{key}/{name}", found)
        elif is_candidate(name) and entry.is_file():
            stat = entry.stat()
            # `folder / name` parses the name alone: a third cheaper than `Path(entry.path)`.
            found.append(FileStat(folder / name, f"{key}/{name}", stat.st_size, stat.st_mtime_ns))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector back while a scan builds its objects.

    A scan makes a few objects per file (a path, a stat, a record), none of them in a cycle; the
    collector's full passes over the whole heap, which that many allocations trigger, took about
    half of a cached scan's CPU time (20,000 files on 2 cores). It runs as before afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_files(
    files: Sequence[FileStat], cache: ScanCache | None = None, progress: bool | None = None
) -> tuple[dict[str, Result], int]:
    """Every file's `check_image` result, by key, and how many files were checked: results come
    from `cache` for unchanged files; the others are checked in parallel threads, then cached.

    Args:
        files: the files, from `list_files`.
        cache: the dataset's scan cache; None checks every file.
        progress: show the checks' progress (`console.track`); None: on a terminal.
    """
    started = time.time_ns()
    known = cache.load() if cache is not None else {}
    results: dict[str, Result] = {}
    todo = []
    for file in files:
        result = cached_result(known, file)
        if result is None:
            todo.append(file)
        else:
            results[file.key] = result
    for file, result in zip(todo, check_paths([f.path for f in todo], progress), strict=True):
        results[file.key] = result
    if cache is not None and (todo or len(known) != len(files)):  # changed, added or removed
        cache.save(files, [results[file.key] for file in files], started)
    return results, len(todo)


def check_paths(paths: Sequence[Path], progress: bool | None = None) -> Iterator[Result]:
    """`check_image` of each path, in order, checked in parallel threads (`console.track` shows
    the progress; None: on a terminal)."""
    if not paths:
        return
    with ThreadPoolExecutor(min(32, 4 * (os.cpu_count() or 1))) as pool:
        checked = pool.map(check_image, paths)
        yield from track(checked, "checking images", len(paths), unit="files", enabled=progress)


def scan_paths(paths: list[Path], labels: list[int]) -> tuple[list[ImageRecord], list[BadFile]]:
    """Check the files without a cache; readable ones keep their label, in order."""
    records, bad = [], []
    for path, label, result in zip(paths, labels, check_paths(paths), strict=True):
        if isinstance(result, str):
            bad.append(BadFile(path, result))
        else:
            records.append(ImageRecord(path, label, result))
    return records, bad


def scan_files(
    files: dict[str, list[FileStat]], classes: list[str]
) -> tuple[list[ImageRecord], list[BadFile]]:
    """Check every file, without a cache; returns the readable and the bad ones."""
    listed = [file for stats in files.values() for file in stats]
    return sort_results(files, classes, check_files(listed)[0])


def sort_results(
    files: dict[str, list[FileStat]], classes: list[str], results: Mapping[str, Result]
) -> tuple[list[ImageRecord], list[BadFile]]:
    """The readable and the bad files of `files` (class name -> files), by their `results`."""
    records, bad = [], []
    for name, stats in files.items():
        label = classes.index(name)
        for file in stats:
            result = results[file.key]
            if isinstance(result, str):
                bad.append(BadFile(file.path, result))
            else:
                records.append(ImageRecord(file.path, label, result))
    return records, bad


def list_tree(root: Path) -> list[Path]:
    """Every candidate image under `root`, at any depth, sorted by path, less the masks that
    `root`'s boxes file names (`candidates.annotation_masks`)."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder does not exist or is a file: {root}")
    masks = annotation_masks(root)
    return sorted(
        p
        for p in root.rglob("*")
        if is_candidate(p.name)
        and p.is_file()
        and not any(is_hidden(part) for part in p.relative_to(root).parts)
        and p not in masks
    )
