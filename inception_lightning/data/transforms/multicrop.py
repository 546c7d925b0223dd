"""Multi-crop views for testing, cut as the GoogLeNet paper (sect. 10) cuts them.

144 crops: the whole image resized on its shorter side to 4 scales (256, 288, 320 and 352 for
224 px views, here scaled to the view size S), 3 squares per scale (left, centre, right; top,
centre, bottom for portrait images), 6 views per square (4 corners, the centre, the whole square
resized to S) and their horizontal mirrors: 4 x 3 x 6 x 2 = 144. The image is never centre-cropped
first, so a non-square image gives 144 distinct views (a square one 48: its squares coincide).

12 crops: the first scale's centre square alone: 1 x 1 x 6 x 2. The v3 and v4 papers report
12-crop results without defining them; this is the sub-scheme of the 144-crop one with 12 views.

The work is split where it is cheapest. Loader workers resize each image and cut its squares
(`MultiCrop`; uint8, about 6 MB per image at S = 299, against 39 MB for its 144 views). On the
device, `MultiCropViews` cuts the views from a batch's squares and normalises them one at a
time, so the model sees one view of the batch at once and memory never holds all the views.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from inception_lightning.data.transforms.preprocessing import Normalize, Preprocessing

SCALE_RATIOS = (256 / 224, 288 / 224, 320 / 224, 352 / 224)
CROP_SCHEMES = (1, 12, 144)
VIEWS_PER_SQUARE = 12  # 6 crops and their mirrors


def check_crops(crops: int) -> int:
    """`crops` if it is a scheme (1, 12 or 144), else a ValueError naming them."""
    if crops not in CROP_SCHEMES:
        raise ValueError(f"test_crops must be one of {CROP_SCHEMES}, got {crops}")
    return crops


class MultiCrop:
    """uint8 image `[3, H, W]` -> its squares per scale: a tuple of uint8 `[n, 3, s, s]`.

    Args:
        preprocessing: the view size (`image_size`) and the resize interpolation.
        crops: 12 (one scale, the centre square) or 144 (4 scales, 3 squares each).
    """

    def __init__(self, preprocessing: Preprocessing, crops: int) -> None:
        if check_crops(crops) == 1:
            raise ValueError("MultiCrop cuts 12 or 144 views; one view is the evaluation crop")
        size = preprocessing.image_size
        ratios = SCALE_RATIOS if crops == 144 else SCALE_RATIOS[:1]
        self.sides = [round(size * ratio) for ratio in ratios]
        self.all_squares = crops == 144
        self.interpolation = InterpolationMode(preprocessing.interpolation)

    def __call__(self, image: Tensor) -> tuple[Tensor, ...]:
        scales = []
        for side in self.sides:
            scaled = TF.resize(image, [side], self.interpolation, antialias=True)
            squares = _squares(scaled)
            scales.append(torch.stack(squares if self.all_squares else squares[1:2]))
        return tuple(scales)


def _squares(image: Tensor) -> list[Tensor]:
    """Left, centre, right squares (top, centre, bottom when taller than wide)."""
    height, width = image.shape[-2:]
    side, longer = min(height, width), max(height, width)
    offsets = (0, (longer - side) // 2, longer - side)
    if width >= height:
        return [image[..., :, o : o + side] for o in offsets]
    return [image[..., o : o + side, :] for o in offsets]


class MultiCropDataset(Dataset[tuple[tuple[Tensor, ...], int]]):
    """A labelled dataset's whole images as multi-crop squares: `(MultiCrop(image), label)`.

    Not a `LabelledImages` (its items are not images), so explainers leave it alone.

    Args:
        dataset: items `(uint8 image [3, H, W] of any size, label)`, with `classes`.
        transform: the `MultiCrop` to apply.
    """

    def __init__(self, dataset: Any, transform: MultiCrop) -> None:
        self.dataset = dataset
        self.transform = transform
        self.classes = dataset.classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[tuple[Tensor, ...], int]:
        image, label = self.dataset[index]
        return self.transform(image), label


@dataclass(frozen=True)
class MultiCropViews:
    """A batch's squares on the device; iterating yields its views as model input, one at a time.

    Args:
        squares: per scale, uint8 `[B, n, 3, s, s]` (a collated `MultiCrop` output).
        size: the view size S.
        interpolation: how the whole square is resized to S.
        normalize: uint8 -> model input.
    """

    squares: Sequence[Tensor]
    size: int
    interpolation: str
    normalize: Normalize

    def __len__(self) -> int:
        return VIEWS_PER_SQUARE * sum(scale.shape[1] for scale in self.squares)

    def __iter__(self) -> Iterator[Tensor]:
        for scale in self.squares:
            for j in range(scale.shape[1]):
                square = self.normalize(scale[:, j])
                for view in self._six_views(square):
                    yield view
                    yield view.flip(-1)

    def _six_views(self, square: Tensor) -> list[Tensor]:
        """Four corners, the centre, and the whole square resized to the view size."""
        size, side = self.size, square.shape[-1]
        far, mid = side - size, (side - size) // 2
        corners = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]
        views = [square[..., y : y + size, x : x + size] for y, x in corners]
        mode = InterpolationMode(self.interpolation)
        return [*views, TF.resize(square, [size, size], mode, antialias=True)]
