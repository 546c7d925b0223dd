"""Datasets over scanned image files: `(image, label)` items, and object masks when annotated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from inception_lightning.data.boxes import Annotation
from inception_lightning.data.folders.decode import decode_rgb
from inception_lightning.data.scanning.scan import ImageRecord
from inception_lightning.data.transforms.preprocessing import Normalize


class ImageFolderDataset(Dataset[tuple[Tensor, int]]):
    """Images decoded to RGB and cropped; items are `(image uint8 [3, H, W], label)`.

    Items are not normalised: `normalize` turns them, or batches of them, into model input.
    `ImageFolderDataModule` applies it on the device after each batch's transfer; code that
    reads items directly applies it itself (the explainers do). A `data.protocol.LabelledImages`.

    Args:
        records: the images, from `scan_files`.
        classes: class names; `records[i].label` indexes them.
        transform: uint8 image -> uint8 crop (the geometry).
        normalize: uint8 images -> normalised float model input.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        classes: list[str],
        transform: Callable[[Tensor], Tensor],
        normalize: Normalize,
    ) -> None:
        self.records = list(records)
        self.classes = classes
        self.transform = transform
        self.normalize = normalize

    @property
    def labels(self) -> list[int]:
        """Every item's class index, from the scan (no image is decoded)."""
        return [record.label for record in self.records]

    @property
    def has_masks(self) -> bool:
        """False: without a boxes file no object is known."""
        return False

    def __len__(self) -> int:
        return len(self.records)

    def path(self, index: int) -> Path:
        """The file of item `index`."""
        return self.records[index].path

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        record = self.records[index]
        return self.transform(decode_rgb(record.path)), record.label

    def mask(self, index: int) -> Tensor:
        """No object is known without a boxes file."""
        raise KeyError(f"no boxes file: the object in {self.records[index].path} is unknown")


class MaskedImageFolderDataset(ImageFolderDataset):
    """An `ImageFolderDataset` whose images have known objects (from a boxes file).

    Args:
        records, classes, transform, normalize: as for `ImageFolderDataset`.
        root: the folder the boxes file's paths are relative to.
        annotations: root-relative image path -> its object.
        geometry: the evaluation resize and crop, applied to masks.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        classes: list[str],
        transform: Callable[[Tensor], Tensor],
        normalize: Normalize,
        root: Path,
        annotations: dict[str, Annotation],
        geometry: v2.Transform,
    ) -> None:
        super().__init__(records, classes, transform, normalize)
        self.root = root
        self.annotations = annotations
        self.geometry = geometry

    @property
    def has_masks(self) -> bool:
        """True: the boxes file says where the objects are."""
        return True

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
