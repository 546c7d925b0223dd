"""Preprocessing: Inception's defaults or a timm pretrained config, as torchvision v2 transforms.

torchvision's v2 transforms are used rather than timm's `create_transform` because they move an
object mask (`tv_tensors.Mask`) through exactly the same geometry as its image, which is how
`mask(index)` follows the evaluation transform. The geometry copies timm's: evaluation resizes
the shorter side to `floor(image_size / crop_pct)` and centre-crops `image_size`.

The geometry runs on uint8 tensors in the loader workers; `Normalize` turns whole batches into
float model input after they reach the device, as timm's `PrefetchLoader` does, so workers pass
a quarter of the bytes through shared memory and pinned copies.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode, v2

from inception_lightning.models.registry import get_entry, list_models

INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects of its input images."""

    image_size: int = 299
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = INCEPTION_MEAN
    std: tuple[float, ...] = INCEPTION_STD

    @property
    def resize_size(self) -> int:
        """The shorter side before the evaluation centre crop (timm's `scale_size`)."""
        return math.floor(self.image_size / self.crop_pct)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Preprocessing:
        """From plain values, as a checkpoint stores them (lists for mean and std)."""
        known = {f.name for f in fields(cls)}
        kwargs = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known
        }
        return cls(**kwargs)


def resolve_preprocessing(
    pretrained_cfg: str | None = None,
    image_size: int | None = None,
    crop_pct: float | None = None,
    base: Preprocessing | None = None,
) -> Preprocessing:
    """Inception's defaults, a timm model's pretrained config, or `base`, with optional overrides.

    Reads the config from timm's registry only; no weights are downloaded.

    Args:
        pretrained_cfg: a timm model name (`"inception_v3.tf_in1k"`), or a name from
            `list_models()`, which maps to the timm weights it loads; None: Inception's defaults.
        image_size: overrides the crop size.
        crop_pct: overrides the fraction of the resized image kept by the evaluation crop.
        base: a whole preprocessing to start from instead (a checkpoint's); not with
            `pretrained_cfg`.
    """
    if base is not None and pretrained_cfg is not None:
        raise ValueError(
            f"give preprocessing or pretrained_cfg, not both (got {base} and {pretrained_cfg!r})"
        )
    if base is None:
        base = Preprocessing() if pretrained_cfg is None else _from_timm(pretrained_cfg)
    if image_size is not None:
        base = replace(base, image_size=image_size)
    if crop_pct is not None:
        base = replace(base, crop_pct=crop_pct)
    return base


def _from_timm(name: str) -> Preprocessing:
    """The preprocessing of a timm pretrained config, or of our variant `name`'s timm weights."""
    timm_name = get_entry(name).timm_name if name in list_models() else name
    if timm_name is None:  # one of ours without released weights: Inception's defaults
        return Preprocessing()
    # imported here: importing timm imports all its models (about 1 s of every start)
    import timm.data
    import timm.models

    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None:
        raise ValueError(f"no timm pretrained config named {name!r}")
    data = timm.data.resolve_data_config(pretrained_cfg=cfg.to_dict())
    if data["crop_mode"] != "center":
        raise ValueError(f"{name!r} uses crop_mode {data['crop_mode']!r}; only 'center' works")
    return Preprocessing(
        data["input_size"][-1],
        data["crop_pct"],
        data["interpolation"],
        tuple(data["mean"]),
        tuple(data["std"]),
    )


@dataclass(frozen=True)
class Normalize:
    """uint8 images `[..., C, H, W]` -> float32 `(x / 255 - mean) / std`, on their device.

    The same operations, in the same order, as torchvision's `ToDtype(float32, scale=True)` and
    `Normalize(mean, std)`, so the values are identical; but mean and std are copied to each
    device once, where torchvision's `Normalize` copies them from the host (a blocking copy on
    CUDA) for every batch.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not all(self.std):
            raise ValueError(f"need one non-zero std per mean, got {self.mean} and {self.std}")

    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"Normalize takes uint8 images, got {images.dtype}")
        mean, std = _channel_stats(self.mean, self.std, images.device)
        return images.to(torch.float32).mul_(1.0 / 255).sub_(mean).div_(std)

    def invert(self, inputs: Tensor) -> Tensor:
        """Model input back to uint8 images in their true colours (rounded, clipped)."""
        mean, std = _channel_stats(self.mean, self.std, inputs.device)
        pixels = (inputs.detach().float() * std + mean) * 255
        return pixels.round_().clamp_(0, 255).to(torch.uint8)


@functools.cache
def _channel_stats(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[Tensor, Tensor]:
    """Mean and std as `[C, 1, 1]` float32 tensors on `device`, made once per process."""
    return (
        torch.tensor(mean, dtype=torch.float32, device=device).view(-1, 1, 1),
        torch.tensor(std, dtype=torch.float32, device=device).view(-1, 1, 1),
    )


def eval_geometry(p: Preprocessing) -> v2.Compose:
    """Resize and centre crop, uint8 image -> uint8 `[3, image_size, image_size]`, deterministic.

    Applied to a `tv_tensors.Mask` it maps masks like images.
    """
    return v2.Compose(
        [
            v2.Resize(p.resize_size, interpolation=InterpolationMode(p.interpolation)),
            v2.CenterCrop(p.image_size),
        ]
    )


def train_geometry(p: Preprocessing, min_scale: float = 0.08, hflip: float = 0.5) -> v2.Compose:
    """Random-resized crop and horizontal flip, uint8 image -> uint8 `[3, size, size]`.

    Args:
        p: the model's preprocessing.
        min_scale: smallest fraction of the image area a crop covers (torchvision: 0.08).
        hflip: probability of a horizontal flip.
    """
    if not 0.0 < min_scale <= 1.0:
        raise ValueError(f"min_scale must lie in (0, 1], got {min_scale}")
    if not 0.0 <= hflip <= 1.0:
        raise ValueError(f"hflip must lie in [0, 1], got {hflip}")
    return v2.Compose(
        [
            v2.RandomResizedCrop(
                p.image_size,
                scale=(min_scale, 1.0),
                interpolation=InterpolationMode(p.interpolation),
            ),
            v2.RandomHorizontalFlip(hflip),
        ]
    )
