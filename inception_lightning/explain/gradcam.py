"""Grad-CAM on any layer, usable from training loops: a thin wrapper around Captum."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import Tensor, nn

from inception_lightning.models.blocks import iter_blocks

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
    """The dotted name of the model's last Inception block."""
    names = [name for name, _ in iter_blocks(model)]
    if not names:
        raise ValueError("the model has no Inception block; name a target layer explicitly")
    return names[-1]


class GradCAM:
    """Grad-CAM maps (Selvaraju et al. 2017) of one layer, computed by Captum's LayerGradCam.

    The map of class c is `sum_k mean_ij(d y_c / d A_kij) * A_k` over the layer's channels k.
    `sign` is applied to that coarse map ("relu": the paper's choice, keeps evidence for c;
    "abs": magnitude of evidence either way; "signed": raw), then the map is upsampled to the
    input size with `F.interpolate(mode=interpolation, align_corners=False)`, which is what
    Captum's `LayerAttribution.interpolate` does: each map cell is centred on its block of input
    pixels, as in the reference implementation's image resize.

    Calls work under `torch.inference_mode` (they compute on fresh tensors with inference mode
    off), batch on the model's device, run the model in eval mode (BatchNorm uses its running
    statistics, dropout is off) and restore every submodule's train/eval flag. Captum removes
    its hook in a `finally` block, so none is left behind. Parameters' `.grad` are untouched:
    gradients are taken with respect to the layer output only.

    Args:
        model: maps images `[N, 3, H, W]` to logits `[N, C]`.
        layer: dotted module name; None takes the model's last Inception block.
        sign: "relu", "abs" or "signed".
        interpolation: upsampling mode.
        batch_size: images per forward/backward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        sign: SignMode = "relu",
        interpolation: Interpolation = "bilinear",
        batch_size: int = 32,
    ) -> None:
        if sign not in SIGN_MODES:
            raise ValueError(f"sign must be one of {SIGN_MODES}, got {sign!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}: {interpolation!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.layer = default_layer(model) if layer is None else layer
        try:
            module = model.get_submodule(self.layer)
        except AttributeError:
            raise ValueError(f"the model has no submodule named {self.layer!r}") from None
        # attribute_to_layer_input stays False: Captum saves a pre-hook's input tensor itself,
        # so an in-place op in the layer (a ReLU) would change the saved activations.
        self._captum = LayerGradCam(model, module)
        self.sign = sign
        self.interpolation = interpolation
        self.batch_size = batch_size

    def grid(self, inputs: Tensor) -> tuple[int, int]:
        """The coarse map's size for inputs like `inputs` (one image is attributed)."""
        return tuple(self.attribute(inputs[:1], [0], upsample=False).shape[-2:])

    def attribute(
        self, inputs: Tensor, targets: Tensor | Sequence[int], upsample: bool = True
    ) -> Tensor:
        """Maps `[N, H, W]` (float32, on the model's device) for `targets[i]` of `inputs[i]`.

        Args:
            inputs: images `[N, 3, H, W]`, on any device.
            targets: one class index per image.
            upsample: resize to the input size; False keeps the layer's grid.
        """
        device = next(self.model.parameters()).device
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
                coarse = self._captum.attribute(x, target=t).detach().float()
                chunks.append(self._postprocess(coarse, tuple(x.shape[-2:]), upsample))
        return torch.cat(chunks)[:, 0]

    def _postprocess(self, coarse: Tensor, size: tuple[int, ...], upsample: bool) -> Tensor:
        if self.sign == "relu":
            coarse = coarse.clamp(min=0)
        elif self.sign == "abs":
            coarse = coarse.abs()
        if not upsample:
            return coarse
        align = None if self.interpolation == "nearest" else False
        return F.interpolate(coarse, size=size, mode=self.interpolation, align_corners=align)
