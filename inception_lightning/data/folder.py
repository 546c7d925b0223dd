"""Datasets over scanned image files: `(image, label)` items, and object masks when annotated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from inception_lightning.data.boxes import Annotation
from inception_lightning.data.images import load_rgb
from inception_lightning.data.scan import ImageRecord


class ImageFolderDataset(Dataset[tuple[Tensor, int]]):
    """Images decoded to RGB and transformed; items are `(image [3, H, W], label)`.

    Args:
        records: the images, from `scan_files`.
        classes: class names; `records[i].label` indexes them.
        transform: PIL image -> normalised float tensor.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        classes: list[str],
        transform: Callable[[Image.Image], Tensor],
    ) -> None:
        self.records = list(records)
        self.classes = classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        record = self.records[index]
        return self.transform(load_rgb(record.path)), record.label


class MaskedImageFolderDataset(ImageFolderDataset):
    """An `ImageFolderDataset` whose images have known objects (from a boxes file).

    Args:
        records: the images, from `scan_files`.
        classes: class names.
        transform: PIL image -> normalised float tensor.
        root: the folder the boxes file's paths are relative to.
        annotations: root-relative image path -> its object.
        geometry: the evaluation resize and crop, applied to masks.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        classes: list[str],
        transform: Callable[[Image.Image], Tensor],
        root: Path,
        annotations: dict[str, Annotation],
        geometry: v2.Transform,
    ) -> None:
        super().__init__(records, classes, transform)
        self.root = root
        self.annotations = annotations
        self.geometry = geometry

    def mask(self, index: int) -> Tensor:
        """The object's mask, bool [H, W], in the coordinates of the evaluation-transformed image.

        Raises `KeyError` naming the image when the boxes file has no entry for it.
        """
        record = self.records[index]
        key = record.path.relative_to(self.root).as_posix()
        if key not in self.annotations:
            raise KeyError(f"the boxes file has no entry for {key!r}")
        mask = self.annotations[key].rasterize(self.root, record.size)
        return self.geometry(tv_tensors.Mask(torch.from_numpy(mask))).as_subclass(Tensor)
