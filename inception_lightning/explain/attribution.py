"""What every attribution method shares: batching, gradients anywhere, and one map format.

A method turns images and target classes into maps `[N, H, W]` at the input size. Whatever
Captum returns (a layer's coarse grid, or per-channel input attributions) goes through the
same steps, so that the metrics compare methods fairly:

1. sum over channels (a layer's channels, or the input's colour channels);
2. apply the sign: "relu" keeps evidence for the class, "abs" keeps magnitude, "signed" both;
3. bring the map to the input size (`F.interpolate`, as Captum's `LayerAttribution.interpolate`);
4. divide by the map's largest magnitude, so every map peaks at 1 (or -1); a map that is zero
   everywhere stays zero and counts as empty (see `empty_maps`). The sanity checks skip this
   step (`attribute(..., normalize=False)`): a map's magnitude is part of what they compare.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inception_lightning.models.anatomy import anatomy_of

SignMode = Literal["relu", "abs", "signed"]
Interpolation = Literal["bilinear", "bicubic", "nearest"]
SIGN_MODES: tuple[str, ...] = ("relu", "abs", "signed")
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic", "nearest")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, then restore each one's own train/eval flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def default_layer(model: nn.Module) -> str:
    """The dotted name of the layer its anatomy explains by default: the last Inception block
    (ours, timm's or torchvision's Inception network; see `models.anatomy`)."""
    anatomy = anatomy_of(model)
    if anatomy is None or not anatomy.explain:
        raise ValueError("the model has no Inception block; name a target layer explicitly")
    return anatomy.explain[0]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def empty_maps(maps: Tensor) -> Tensor:
    """Boolean `[N]`: maps that are zero everywhere (no evidence at all for the class)."""
    return (maps == 0).flatten(1).all(dim=1)


def normalize_maps(maps: Tensor) -> Tensor:
    """Each `[H, W]` map divided by its largest magnitude; all-zero maps stay zero."""
    peak = maps.abs().flatten(1).amax(dim=1).view(-1, *([1] * (maps.dim() - 1)))
    return torch.where(peak > 0, maps / peak.clamp(min=torch.finfo(maps.dtype).tiny), maps)


def with_sign(maps: Tensor, sign: SignMode) -> Tensor:
    """Step 2 of the module docstring: `maps` with the sign applied."""
    if sign == "relu":
        return maps.clamp(min=0)
    return maps.abs() if sign == "abs" else maps


def to_map(raw: Tensor, size: tuple[int, int], sign: SignMode, interpolation: str) -> Tensor:
    """Steps 1-3 of the module docstring: raw attributions `[N, C, h, w]` to maps `[N, H, W]`
    (`Attribution.attribute` normalises them)."""
    summed = with_sign(raw.detach().float().sum(dim=1, keepdim=True), sign)
    if tuple(summed.shape[-2:]) != tuple(size):
        align = None if interpolation == "nearest" else False
        summed = F.interpolate(summed, size=size, mode=interpolation, align_corners=align)
    return summed[:, 0]


class Attribution(ABC):
    """An attribution method bound to a model: `attribute(inputs, targets)` gives maps.

    Calls work under `torch.inference_mode` (they compute on fresh tensors with inference mode
    off), batch on the model's device, run the model in eval mode (BatchNorm uses its running
    statistics, dropout is off) and restore every submodule's train/eval flag. Captum removes
    its hooks in `finally` blocks, so none is left behind; parameters' `.grad` are untouched.

    Subclasses set `name`, `default_sign` and `costly`, build their Captum objects in `_bind`
    and compute one batch's maps in `_maps`.

    Args:
        model: maps images `[N, 3, H, W]` to logits `[N, C]`.
        sign: "relu", "abs" or "signed"; None takes the method's `default_sign`.
        interpolation: how coarse maps are brought to the input size.
        batch_size: images per forward/backward pass.
    """

    name: ClassVar[str]
    default_sign: ClassVar[SignMode] = "relu"
    costly: ClassVar[bool] = False
    """Tens to hundreds of passes a map: the sanity checks give it fewer (`SanityOptions`)."""

    def __init__(
        self,
        model: nn.Module,
        sign: SignMode | None = None,
        interpolation: Interpolation = "bilinear",
        batch_size: int = 32,
    ) -> None:
        sign = self.default_sign if sign is None else sign
        if sign not in SIGN_MODES:
            raise ValueError(f"sign must be one of {SIGN_MODES}, got {sign!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}: {interpolation!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.sign: SignMode = sign
        self.interpolation: Interpolation = interpolation
        self.batch_size = batch_size
        self.model = model
        self._bind(model)

    def with_model(self, model: nn.Module) -> Attribution:
        """The same method and settings on another model of the same structure."""
        other = copy.copy(self)
        other.model = model
        other._bind(model)
        return other

    @property
    def explained_layers(self) -> list[str]:
        """The layers whose activations the maps come from (none: the input's pixels)."""
        return []

    def with_sign(self, sign: SignMode) -> Attribution:
        """The same method and model with another sign ("signed": the raw attribution)."""
        if sign not in SIGN_MODES:
            raise ValueError(f"sign must be one of {SIGN_MODES}, got {sign!r}")
        other = copy.copy(self)
        other.sign = sign
        return other

    def describe(self) -> str:
        """The method and its settings, for captions and reports."""
        return f"{self.name} ({self.sign})"

    def attribute(
        self, inputs: Tensor, targets: Tensor | Sequence[int], normalize: bool = True
    ) -> Tensor:
        """Maps `[N, H, W]` (float32, on the model's device) for `targets[i]` of `inputs[i]`.

        Args:
            inputs: images `[N, 3, H, W]`, on any device.
            targets: one class index per image.
            normalize: divide each map by its largest magnitude (step 4 of the module
                docstring); False keeps the method's own scale (fused maps are normalised
                before fusing whatever this says).
        """
        device = model_device(self.model)
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        if len(targets) != len(inputs):
            raise ValueError(f"got {len(inputs)} inputs but {len(targets)} targets")
        if any(p.is_inference() for p in self.model.parameters()):
            raise RuntimeError(
                "the model's parameters are inference tensors (created or loaded under "
                "torch.inference_mode), so no gradient can flow; load the model outside it"
            )
        chunks = []
        with torch.inference_mode(False), torch.enable_grad(), eval_mode(self.model):
            for start in range(0, len(inputs), self.batch_size):
                x = inputs[start : start + self.batch_size].to(device).clone()
                t = targets[start : start + self.batch_size].tolist()
                chunks.append(self._maps(x, t))
        maps = torch.cat(chunks)
        return normalize_maps(maps) if normalize else maps

    def _finish(self, raw: Tensor, size: tuple[int, int]) -> Tensor:
        return to_map(raw, size, self.sign, self.interpolation)

    @abstractmethod
    def _bind(self, model: nn.Module) -> None:
        """Build what `_maps` needs for `model` (Captum objects); check names."""

    @abstractmethod
    def _maps(self, inputs: Tensor, targets: list[int]) -> Tensor:
        """Maps `[n, H, W]` of one batch, through `_finish` (not normalised)."""
