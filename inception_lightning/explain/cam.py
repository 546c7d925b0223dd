"""The Grad-CAM family: maps from a layer's activations and gradients, by Captum.

- `gradcam` (Selvaraju et al. 2017): `sum_k mean_ij(dy_c/dA_k) * A_k`, Captum's `LayerGradCam`;
- `hirescam` (Draelos & Carin 2020): `sum_k dy_c/dA_k * A_k` element-wise, Captum's
  `LayerGradientXActivation`;
- `layercam` (Jiang et al. 2021): `sum_k relu(dy_c/dA_k) * A_k` element-wise, Captum's
  `LayerGradientXActivation` keeping the positive gradients;
- `guided_gradcam` (Selvaraju et al. 2017): guided backprop times the upsampled Grad-CAM, per
  pixel, Captum's `GuidedGradCam`.

Each then takes its sign ("relu" by default: the papers' final ReLU) and is brought to the
input size (`attribution.to_map`). Several layers are fused as LayerCAM does.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Sequence

import torch
from captum.attr import GuidedGradCam, LayerGradCam, LayerGradientXActivation
from torch import Tensor, nn

from inception_lightning.explain.attribution import (
    Attribution,
    Interpolation,
    SignMode,
    default_layer,
    eval_mode,
    model_device,
    normalize_maps,
)

FUSION_GAMMA = 2.0


def fuse(maps: Sequence[Tensor], gamma: float = FUSION_GAMMA) -> Tensor:
    """LayerCAM's fusion of normalised maps of several layers (Jiang et al. 2021, sect. 3.3).

    Each map is scaled by `tanh(gamma * map)`, which lifts the weaker values of shallow,
    finer layers, then the maps are combined by their element-wise maximum (as torchcam's
    `fuse_cams` does) and normalised again. One map is returned as it is.
    """
    if len(maps) == 1:
        return maps[0]
    scaled = torch.stack([torch.tanh(gamma * m) for m in maps])
    return normalize_maps(scaled.amax(dim=0))


class LayerMethod(Attribution):
    """A map from one or more layers' activations; several layers are fused (`fuse`).

    Args:
        model: maps images `[N, 3, H, W]` to logits `[N, C]`.
        layers: dotted module name(s); None takes the model's last Inception block.
        sign: "relu", "abs" or "signed"; None takes the method's default.
        interpolation: how each layer's map is upsampled to the input size.
        batch_size: images per forward/backward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str] | None = None,
        sign: SignMode | None = None,
        interpolation: Interpolation = "bilinear",
        batch_size: int = 32,
    ) -> None:
        names = [layers] if isinstance(layers, str) else list(layers or [default_layer(model)])
        if not names:
            raise ValueError("layers must name at least one module")
        self.layers = names
        super().__init__(model, sign, interpolation, batch_size)

    @property
    def layer(self) -> str:
        """The first (or only) layer."""
        return self.layers[0]

    @property
    def explained_layers(self) -> list[str]:
        return list(self.layers)

    def describe(self) -> str:
        return f"{self.name} ({self.sign}) on {' + '.join(self.layers)}"

    def grids(self, inputs: Tensor) -> list[tuple[int, int]]:
        """Each layer's output grid for inputs like `inputs` (one image goes forward)."""
        shapes: list[tuple[int, int]] = []
        handles = [
            self.model.get_submodule(name).register_forward_hook(
                lambda _m, _i, out: shapes.append(tuple(out.shape[-2:]))
            )
            for name in self.layers
        ]
        try:
            with torch.no_grad(), eval_mode(self.model):
                self.model(inputs[:1].to(model_device(self.model)))
        finally:
            for handle in handles:
                handle.remove()
        return shapes

    def _bind(self, model: nn.Module) -> None:
        modules = []
        for name in self.layers:
            try:
                modules.append(model.get_submodule(name))
            except AttributeError:
                raise ValueError(f"the model has no submodule named {name!r}") from None
        self._captum = [self._captum_for(model, module) for module in modules]

    def _maps(self, inputs: Tensor, targets: list[int]) -> Tensor:
        size = tuple(inputs.shape[-2:])
        maps = [self._finish(self._raw(c, inputs, targets), size) for c in self._captum]
        return maps[0] if len(maps) == 1 else fuse([normalize_maps(m) for m in maps])

    @abstractmethod
    def _captum_for(self, model: nn.Module, module: nn.Module) -> object:
        """The Captum attribution object of one layer."""

    def _raw(self, captum: object, inputs: Tensor, targets: list[int]) -> Tensor:
        # attribute_to_layer_input stays False: Captum saves a pre-hook's input tensor itself,
        # so an in-place op in the layer (a ReLU) would change the saved activations.
        return captum.attribute(inputs, target=targets)


class GradCAMMap(LayerMethod):
    """Grad-CAM (Selvaraju et al. 2017) by Captum's `LayerGradCam`, sign applied after it."""

    name = "gradcam"

    def _captum_for(self, model: nn.Module, module: nn.Module) -> LayerGradCam:
        return LayerGradCam(model, module)


class HiResCAMMap(LayerMethod):
    """HiResCAM (Draelos & Carin 2020): gradient x activation, element-wise, summed over
    channels; Captum's `LayerGradientXActivation` with the channel sum of `to_map`."""

    name = "hirescam"

    def _captum_for(self, model: nn.Module, module: nn.Module) -> LayerGradientXActivation:
        return LayerGradientXActivation(model, module)


class PositiveGradientXActivation(LayerGradientXActivation):
    """Captum's `LayerGradientXActivation` with the gradients' negative parts set to zero."""

    def multiply_gradient_acts(
        self, gradients: tuple[Tensor, ...], evals: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...]:
        return tuple(g.clamp(min=0) * a for g, a in zip(gradients, evals, strict=True))


class LayerCAMMap(LayerMethod):
    """LayerCAM (Jiang et al. 2021, eq. 4-5): positive gradients x activations, element-wise.

    Captum has no LayerCAM; its `LayerGradientXActivation` computes gradient and activation
    in one pass and leaves their product to `multiply_gradient_acts`, which this overrides.
    """

    name = "layercam"

    def _captum_for(self, model: nn.Module, module: nn.Module) -> LayerGradientXActivation:
        return PositiveGradientXActivation(model, module)


class GuidedGradCAMMap(LayerMethod):
    """Guided Grad-CAM (Selvaraju et al. 2017) by Captum's `GuidedGradCam`: guided backprop's
    input gradients times the Grad-CAM map upsampled with this object's interpolation.

    Its sign defaults to "abs": guided backprop is a gradient, whose sign says which way a
    pixel's intensity would move the score, not whether the pixel is evidence.
    """

    name = "guided_gradcam"
    default_sign = "abs"

    def _captum_for(self, model: nn.Module, module: nn.Module) -> GuidedGradCam:
        return GuidedGradCam(model, module)

    def _raw(self, captum: object, inputs: Tensor, targets: list[int]) -> Tensor:
        inputs.requires_grad_()  # a fresh clone; Captum would set it, with a warning
        with warnings.catch_warnings():  # Captum says it hooks ReLUs and will remove the hooks
            warnings.filterwarnings("ignore", "Setting backward hooks on ReLU", UserWarning)
            return captum.attribute(inputs, target=targets, interpolate_mode=self.interpolation)
