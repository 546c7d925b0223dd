"""The built-in dataset: one class-defining shape per image over class-free clutter.

Every sample is drawn from its own generator, seeded by `(seed, split, index)`, so a sample does
not depend on how many others are rendered and the train, val and test splits never share a
sample.
The classes are the first `num_classes` names of `SHAPES`, sorted as
class folders sort (so labels survive `write_dataset`); each image shows its class's shape at a
random position, size and colour; the background is a random
two-colour gradient with thin lines and small random triangles in random colours, the same for
every class. `difficulty` (0 to 1) shrinks the objects, lowers their contrast and adds clutter
and noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import Dataset

from inception_lightning.data.builtin.shapes import SHAPES
from inception_lightning.data.transforms.preprocessing import Normalize, Preprocessing

Split = Literal["train", "val", "test"]
_SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1, "test": 2}


_LUMA = np.array([0.299, 0.587, 0.114]) / 255.0


def render_sample(
    rng: np.random.Generator, shape: str, image_size: int, difficulty: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image and its object's mask.

    Args:
        rng: the sample's own generator.
        shape: a name in `SHAPES`.
        image_size: side of the square image in pixels.
        difficulty: 0 (large, high-contrast objects, little clutter) to 1.

    Returns:
        `(image uint8 [H, W, 3], mask bool [H, W])`.
    """
    s, d = image_size, difficulty
    top, bottom = rng.integers(0, 256, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, s)[:, None, None]
    background = top * (1 - ramp) + bottom * ramp
    image = Image.fromarray(np.broadcast_to(background, (s, s, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    line_width = 1 + round(2 * d)
    for _ in range(round(3 + 20 * d)):
        x0, y0, x1, y1 = rng.uniform(0, s, size=4)
        draw.line((x0, y0, x1, y1), fill=tuple(rng.integers(0, 256, size=3)), width=line_width)
    for _ in range(round(3 + 25 * d)):
        cx, cy = rng.uniform(0, s, size=2)
        corners = (rng.uniform(-1, 1, size=(3, 2)) * s * (0.02 + 0.04 * d)) + (cx, cy)
        draw.polygon([tuple(p) for p in corners], fill=tuple(rng.integers(0, 256, size=3)))

    radius = s * rng.uniform(0.24 - 0.13 * d, 0.36 - 0.11 * d)
    cx, cy = rng.uniform(radius, s - radius, size=2)
    candidates = rng.integers(0, 256, size=(32, 3))
    contrast = np.abs((candidates - (top + bottom) / 2) @ _LUMA)
    best = int(np.argmax(np.minimum(contrast, 0.4 - 0.3 * d)))  # first with enough, else most
    SHAPES[shape](draw, cx, cy, radius, tuple(int(c) for c in candidates[best]))
    mask_image = Image.new("L", (s, s))
    SHAPES[shape](ImageDraw.Draw(mask_image), cx, cy, radius, 255)

    pixels = np.asarray(image, dtype=np.float32)
    if d > 0:
        pixels = pixels + rng.normal(0.0, 24.0 * d, size=pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8), np.asarray(mask_image) > 0


def synthetic_preprocessing(image_size: int) -> Preprocessing:
    """The built-in images' preprocessing: rendered at the input size (no crop), Inception's
    mean and std of 0.5, so normalised pixels lie in [-1, 1]."""
    return Preprocessing(image_size=image_size, crop_pct=1.0)


class SyntheticDataset(Dataset[tuple[Tensor, int]]):
    """Pre-rendered split of the built-in dataset; items are `(uint8 image [3, H, W], label)`.

    A `data.protocol.LabelledImages`: `normalize` makes items model input.

    Args:
        split: "train", "val" or "test"; the splits are drawn from disjoint seeds.
        num_samples: images in this split; labels cycle through the classes, so they balance.
            Ignored with `class_counts`.
        num_classes: how many of `SHAPES` to use, in their order (2 to 10).
        image_size: side of the square images in pixels.
        difficulty: 0 to 1, see the module docstring.
        seed: base seed; the same seed gives the same images and masks.
        classes: the class names to label by (a trained model's), which must include the drawn
            shapes; None: the drawn shapes' names.
        normalize: uint8 -> model input; None: Inception's mean and std of 0.5.
        class_counts: images of each drawn shape, in their sorted order (a long tail, say);
            None: `num_samples` images cycling through the classes.
    """

    def __init__(
        self,
        split: Split,
        num_samples: int,
        num_classes: int = 8,
        image_size: int = 79,
        difficulty: float = 0.25,
        seed: int = 0,
        classes: list[str] | None = None,
        normalize: Normalize | None = None,
        class_counts: Sequence[int] | None = None,
    ) -> None:
        shapes = synthetic_classes(num_classes)
        self.classes = shapes if classes is None else list(classes)
        unknown = [shape for shape in shapes if shape not in self.classes]
        if unknown:
            raise ValueError(f"the classes {self.classes} lack the drawn shapes {unknown}")
        if not 0.0 <= difficulty <= 1.0:
            raise ValueError(f"difficulty must lie in [0, 1], got {difficulty}")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
        drawn = _drawn_shapes(shapes, num_samples, class_counts)
        num_samples = len(drawn)
        self.labels = [self.classes.index(shape) for shape in drawn]
        images = np.empty((num_samples, image_size, image_size, 3), dtype=np.uint8)
        masks = np.empty((num_samples, image_size, image_size), dtype=bool)
        for i, shape in enumerate(drawn):
            rng = np.random.default_rng([seed, _SPLIT_IDS[split], i])
            images[i], masks[i] = render_sample(rng, shape, image_size, difficulty)
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        """uint8 [N, 3, H, W], the images before normalisation."""
        self.masks = torch.from_numpy(masks)
        if normalize is None:
            preprocessing = synthetic_preprocessing(image_size)
            normalize = Normalize(preprocessing.mean, preprocessing.std)
        self.normalize = normalize

    @property
    def has_masks(self) -> bool:
        """Always: every rendered object's mask is known."""
        return True

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], self.labels[index]

    def mask(self, index: int) -> Tensor:
        """The object's mask, bool [H, W]; the images need no evaluation transform."""
        return self.masks[index]


def _drawn_shapes(
    shapes: list[str], num_samples: int, class_counts: Sequence[int] | None
) -> list[str]:
    """The shape of every sample: cycling through `shapes`, or `class_counts` of each in turn."""
    if class_counts is None:
        return [shapes[i % len(shapes)] for i in range(num_samples)]
    if len(class_counts) != len(shapes) or min(class_counts) < 1:
        raise ValueError(
            f"class_counts needs one count of at least 1 for each of the {len(shapes)} classes "
            f"{shapes}, got {list(class_counts)}"
        )
    return [shape for shape, count in zip(shapes, class_counts, strict=True) for _ in range(count)]


def synthetic_classes(num_classes: int) -> list[str]:
    """The class names of a built-in dataset with `num_classes` classes, sorted."""
    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must lie in [2, {len(SHAPES)}], got {num_classes}")
    return sorted(list(SHAPES)[:num_classes])
