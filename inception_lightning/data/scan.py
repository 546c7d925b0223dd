"""Checking a class-per-folder tree before training: structure first, then every file's header.

A file is bad when it is empty, is not an image PIL can identify, exceeds PIL's
decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`), fails `Image.verify()`, or is a
truncated JPEG. The scan never decodes pixels: `Image.open` reads the header and `verify()`
checks PNG chunk checksums through the end chunk (so a truncated PNG fails) but does nothing for
JPEG, so for JPEG the scan also requires the end-of-image marker (FF D9) in the file's last KiB;
a truncated JPEG ends inside its entropy-coded data, where that byte pair cannot occur. A
truncated file of another format passes the scan and fails when decoded, with an error naming it.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from inception_lightning.data.errors import DatasetError, printable


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
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not _hidden(p.name))
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


def list_files(split_dir: Path, classes: list[str]) -> dict[str, list[Path]]:
    """Every non-hidden file under each class folder of `split_dir`, sorted.

    Raises `DatasetError` for a class folder that is empty or not among `classes`.
    """
    files = {}
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not _hidden(p.name)):
        if class_dir.name not in classes:
            raise DatasetError(
                f"class folder {class_dir} is not a training class; training classes: {classes}"
            )
        found = sorted(
            p
            for p in class_dir.rglob("*")
            if p.is_file() and not any(_hidden(part) for part in p.relative_to(class_dir).parts)
        )
        if not found:
            raise DatasetError(f"class folder {class_dir} is empty")
        files[class_dir.name] = found
    return files


def scan_files(
    files: dict[str, list[Path]], classes: list[str]
) -> tuple[list[ImageRecord], list[BadFile]]:
    """Check every file's header in parallel threads; returns the readable and the bad ones."""
    jobs = [(path, classes.index(name)) for name, paths in files.items() for path in paths]
    return scan_paths([path for path, _ in jobs], [label for _, label in jobs])


def scan_paths(paths: list[Path], labels: list[int]) -> tuple[list[ImageRecord], list[BadFile]]:
    """Check the files' headers in parallel threads; readable ones keep their label, in order."""
    with ThreadPoolExecutor(min(32, 4 * (os.cpu_count() or 1))) as pool:
        results = list(pool.map(check_image, paths))
    records, bad = [], []
    for path, label, result in zip(paths, labels, results, strict=True):
        if isinstance(result, str):
            bad.append(BadFile(path, result))
        else:
            records.append(ImageRecord(path, label, result))
    return records, bad


def list_tree(root: Path) -> list[Path]:
    """Every non-hidden file under `root`, at any depth, sorted by path."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder does not exist or is a file: {root}")
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(_hidden(part) for part in p.relative_to(root).parts)
    )


def _hidden(name: str) -> bool:
    return name.startswith(".")
