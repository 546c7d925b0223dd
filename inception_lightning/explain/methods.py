"""The attribution methods by name: `make_attribution("layercam", model, layers=...)`."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from torch import nn

from inception_lightning.explain.attribution import Attribution, Interpolation, SignMode
from inception_lightning.explain.cam import (
    GradCAMMap,
    GuidedGradCAMMap,
    HiResCAMMap,
    LayerCAMMap,
    LayerMethod,
)
from inception_lightning.explain.pixel import IntegratedGradientsMap, OcclusionMap

Method = Literal[
    "gradcam", "guided_gradcam", "hirescam", "layercam", "integrated_gradients", "occlusion"
]
METHODS: dict[str, type[Attribution]] = {
    cls.name: cls
    for cls in (
        GradCAMMap,
        GuidedGradCAMMap,
        HiResCAMMap,
        LayerCAMMap,
        IntegratedGradientsMap,
        OcclusionMap,
    )
}
LAYER_METHODS: tuple[str, ...] = tuple(n for n, c in METHODS.items() if issubclass(c, LayerMethod))
"""The Grad-CAM family: one or three passes a map, against integrated gradients' and occlusion's
tens to hundreds."""
_COMMON = {"self", "model", "layers", "sign", "interpolation", "batch_size"}


def method_options(method: str) -> list[str]:
    """The options a method takes beyond the common ones (layers, sign, interpolation, ...)."""
    return [p for p in inspect.signature(METHODS[method].__init__).parameters if p not in _COMMON]


def make_attribution(
    method: Method,
    model: nn.Module,
    layers: str | Sequence[str] | None = None,
    sign: SignMode | None = None,
    interpolation: Interpolation = "bilinear",
    batch_size: int = 32,
    options: Mapping[str, Any] | None = None,
) -> Attribution:
    """The attribution `method` on `model`.

    Args:
        method: one of `METHODS`.
        model: maps images to logits.
        layers: for the layer methods (the Grad-CAM family): dotted module name(s), fused when
            several; None: the last Inception block. The pixel methods (integrated gradients,
            occlusion) attribute the input and leave it unused.
        sign: None takes the method's default (see each class).
        interpolation: how layer maps are brought to the input size.
        batch_size: images per pass.
        options: the method's own settings (see `method_options`), e.g. `{"steps": 64}`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {list(METHODS)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(method_options(method)))
    if unknown:
        known = method_options(method) or "none"
        raise ValueError(f"{method} has no option {unknown[0]!r}; its options: {known}")
    cls = METHODS[method]
    common = {"sign": sign, "interpolation": interpolation, "batch_size": batch_size}
    if issubclass(cls, LayerMethod):
        return cls(model, layers=layers, **common, **options)
    return cls(model, **common, **options)


def as_methods(method: str | Sequence[str]) -> list[str]:
    """One method name or several as a list, each checked against `METHODS`."""
    names = [method] if isinstance(method, str) else list(method)
    if not names:
        raise ValueError(f"method must name at least one of {list(METHODS)}")
    for name in names:
        if name not in METHODS:
            raise ValueError(f"unknown attribution method {name!r}; choose from {list(METHODS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"method lists {names}: each method once")
    return names
