"""The boxes file: where the object is in each image, for scoring attributions.

A JSON object whose "images" maps each image's path, relative to the dataset root and written
with forward slashes, to its annotation::

    {
      "images": {
        "val/cat/0001.jpg": {"boxes": [[12, 30, 140, 122]]},
        "val/dog/0007.png": {"boxes": [[3, 4, 60, 41]], "mask": "masks/val/dog/0007.png"}
      }
    }

`boxes` lists `[x_min, y_min, x_max, y_max]` in pixels of the stored image, max exclusive (the
convention of PIL's `getbbox`); the object is their union. `mask`, optional, names a grayscale
image of the same size, relative to the dataset root, whose nonzero pixels are the object; when
present it is used instead of the boxes. Images without an entry have no known object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from inception_lightning.data.errors import DatasetError

Box = tuple[float, float, float, float]
BOXES_FILE = "boxes.json"  # the name make-dataset gives it, at the dataset's root


@dataclass(frozen=True)
class Annotation:
    """One image's object: boxes, and optionally a mask file relative to the dataset root."""

    boxes: tuple[Box, ...]
    mask: str | None = None

    def rasterize(self, root: Path, size: tuple[int, int]) -> np.ndarray:
        """The object's mask, bool [H, W], for an image of `size` `(width, height)`."""
        if self.mask is not None:
            path = root / self.mask
            try:
                with Image.open(path) as image:
                    mask = np.asarray(image.convert("L")) > 0
            except OSError as error:
                raise DatasetError(f"cannot read mask {path}: {error}") from error
            if mask.shape != (size[1], size[0]):
                raise DatasetError(
                    f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, its image {size[0]}x{size[1]}"
                )
            return mask
        mask = np.zeros((size[1], size[0]), dtype=bool)
        for x0, y0, x1, y1 in self.boxes:
            mask[round(y0) : round(y1), round(x0) : round(x1)] = True
        return mask


def read_boxes(path: str | Path) -> dict[str, Annotation]:
    """Parse a boxes file; raises `DatasetError` naming the file and the bad entry."""
    path = Path(path)
    try:
        images = json.loads(path.read_text())["images"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"cannot read boxes file {path}: {error!r}") from error
    annotations = {}
    for name, entry in images.items():
        try:
            boxes = tuple(_box(b) for b in entry.get("boxes", ()))
            mask = entry.get("mask")
        except (AttributeError, TypeError, ValueError) as error:
            raise DatasetError(f"boxes file {path}: bad entry for {name!r}: {error}") from error
        if not boxes and mask is None:
            raise DatasetError(f"boxes file {path}: entry for {name!r} has neither boxes nor mask")
        annotations[name] = Annotation(boxes, mask)
    return annotations


def read_boxes_of(path: str | Path, images: set[str], root: Path) -> dict[str, Annotation]:
    """`read_boxes`, refusing entries that name none of `images` (paths relative to `root`)."""
    annotations = read_boxes(path)
    unknown = sorted(annotations.keys() - images)
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise DatasetError(
            f"{len(unknown)} entries of boxes file {path} name no image under {root} "
            f"(paths must be relative to it): {shown}"
        )
    return annotations


def _box(values: list[float]) -> Box:
    x0, y0, x1, y1 = (float(v) for v in values)
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"box {values} is not [x_min, y_min, x_max, y_max] with min < max")
    return x0, y0, x1, y1


def write_boxes(path: str | Path, annotations: dict[str, Annotation]) -> None:
    """Write `annotations` (keyed by root-relative image path) as a boxes file."""
    images = {}
    for name, annotation in annotations.items():
        entry: dict[str, object] = {"boxes": [list(b) for b in annotation.boxes]}
        if annotation.mask is not None:
            entry["mask"] = annotation.mask
        images[name] = entry
    Path(path).write_text(json.dumps({"images": images}, indent=1))
