"""Preprocessing: Inception's defaults or a timm pretrained config, as torchvision v2 transforms.

torchvision's v2 transforms are used rather than timm's `create_transform` because they move an
object mask (`tv_tensors.Mask`) through exactly the same geometry as its image, which is how
`mask(index)` follows the evaluation transform. The geometry copies timm's: evaluation resizes
the shorter side to `floor(image_size / crop_pct)` and centre-crops `image_size`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import timm.data
import timm.models
import torch
from torchvision.transforms import InterpolationMode, v2

from inception_lightning.registry import get_entry, list_models

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


def resolve_preprocessing(
    pretrained_cfg: str | None = None,
    image_size: int | None = None,
    crop_pct: float | None = None,
) -> Preprocessing:
    """Inception's defaults, or a timm model's pretrained config, with optional overrides.

    Reads the config from timm's registry only; no weights are downloaded.

    Args:
        pretrained_cfg: a timm model name (`"inception_v3.tf_in1k"`), or a name from
            `list_models()`, which maps to the timm weights it loads; None: Inception's defaults.
        image_size: overrides the crop size.
        crop_pct: overrides the fraction of the resized image kept by the evaluation crop.
    """
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


def _to_normalised_tensor(p: Preprocessing) -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(p.mean, p.std)]


def eval_geometry(p: Preprocessing) -> v2.Compose:
    """Resize and centre crop; applied to a `tv_tensors.Mask` it maps masks like images."""
    return v2.Compose(
        [
            v2.Resize(p.resize_size, interpolation=InterpolationMode(p.interpolation)),
            v2.CenterCrop(p.image_size),
        ]
    )


def eval_transform(p: Preprocessing) -> v2.Compose:
    """PIL image -> normalised float tensor [3, image_size, image_size], deterministic."""
    return v2.Compose([eval_geometry(p), *_to_normalised_tensor(p)])


def train_transform(p: Preprocessing, min_scale: float = 0.08, hflip: float = 0.5) -> v2.Compose:
    """Random-resized crop and horizontal flip, then normalisation.

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
            *_to_normalised_tensor(p),
        ]
    )
