"""`LabelledImages`: what every dataset of the package offers to explainers and reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from torch import Tensor

from inception_lightning.data.transforms.preprocessing import Normalize


@runtime_checkable
class LabelledImages(Protocol):
    """A dataset of labelled images: `(uint8 image [3, H, W], label)` items, class names, masks.

    Items are not normalised: `normalize` turns them, or batches of them, into model input
    (the datamodules apply it on the device after each batch's transfer), and `normalize.invert`
    turns model input back into the image's true colours.
    """

    classes: list[str]
    normalize: Normalize

    @property
    def labels(self) -> Sequence[int]:
        """Every item's class index, in item order (read without decoding any image)."""

    @property
    def has_masks(self) -> bool:
        """Whether `mask` knows where the object of each image is."""

    def __len__(self) -> int:
        """The number of items."""

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """`(uint8 image [3, H, W], label)`."""

    def mask(self, index: int) -> Tensor:
        """The object's mask, bool `[H, W]`, in the coordinates of the item's image."""
