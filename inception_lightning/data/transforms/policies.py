"""Automatic augmentation policies and random erasing on the uint8 training crops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torchvision.transforms import InterpolationMode, v2

Policy = Literal["none", "randaugment", "trivialaugment", "autoaugment"]


@dataclass(frozen=True)
class PolicyOptions:
    """An augmentation policy after the random-resized crop and flip, then random erasing:
    torchvision v2's transforms on uint8 images (what the loaders carry), in timm's order
    (`create_transform`: crop and flip, policy, normalisation, erasing).

    Args:
        policy: "randaugment" (Cubuk et al. 2020: `num_ops` operations of strength
            `magnitude`), "trivialaugment" (Müller & Hutter 2021: one operation of random
            strength, no settings), "autoaugment" (ImageNet's learnt policy), or "none".
        num_ops: RandAugment's operations per image (timm's rand-m9-n2: 2).
        magnitude: RandAugment's strength, of 31 steps (timm's rand-m9: 9).
        erasing: probability of erasing a random rectangle (Zhong et al. 2020; timm's
            `--reprob`, 0.25 in its recipes); 0: never.
    """

    policy: Policy = "none"
    num_ops: int = 2
    magnitude: int = 9
    erasing: float = 0.0

    def __post_init__(self) -> None:
        if self.policy not in ("none", "randaugment", "trivialaugment", "autoaugment"):
            raise ValueError(
                f"augment policy must be none, randaugment, trivialaugment or autoaugment, "
                f"got {self.policy!r}"
            )
        if self.num_ops < 1:
            raise ValueError(f"num_ops must be at least 1, got {self.num_ops}")
        if not 0 <= self.magnitude <= 30:
            raise ValueError(f"magnitude must lie in [0, 30], got {self.magnitude}")
        if not 0.0 <= self.erasing <= 1.0:
            raise ValueError(f"erasing must lie in [0, 1], got {self.erasing}")


def policy_transforms(options: PolicyOptions, mean: tuple[float, ...]) -> list[v2.Transform]:
    """The transforms `options` asks for, to follow the training geometry.

    Args:
        options: the policy and the erasing probability.
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
