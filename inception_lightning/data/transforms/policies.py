"""Automatic augmentation policies and random erasing on the uint8 training crops."""

from __future__ import annotations

from torchvision.transforms import InterpolationMode, v2

from inception_lightning.data.data_options import AugmentOptions


def policy_transforms(options: AugmentOptions, mean: tuple[float, ...]) -> list[v2.Transform]:
    """The policy and the erasing `options` ask for, to follow the training geometry (their
    crop and flip).

    Args:
        options: the augmentation group: its policy, num_ops, magnitude and erasing.
        mean: the normalisation mean: erased pixels take it, so they are 0 after normalising
            (timm's erasing fills normalised zeros, or noise, after normalisation).
    """
    # torchvision's policies rotate and shear tensors with nearest or bilinear sampling only
    # (timm's, on PIL images, with bilinear or bicubic): bilinear
    mode = InterpolationMode.BILINEAR
    fill = [round(255 * m) for m in mean]
    transforms: list[v2.Transform] = []
    if options.policy == "randaugment":
        transforms.append(
            v2.RandAugment(options.num_ops, options.magnitude, interpolation=mode, fill=fill)
        )
    elif options.policy == "trivialaugment":
        transforms.append(v2.TrivialAugmentWide(interpolation=mode, fill=fill))
    elif options.policy == "autoaugment":
        transforms.append(v2.AutoAugment(interpolation=mode, fill=fill))
    if options.erasing > 0:
        # uint8 values: torchvision's value="random" draws normal noise, for float images only
        transforms.append(v2.RandomErasing(options.erasing, value=fill))
    return transforms
