"""Model registry: `create_model(name, ...)` and `list_models()`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inception_lightning.models.net import Architecture, InceptionNet
from inception_lightning.models.options import Stem
from inception_lightning.models.weights import load_into, read_state_dict


@dataclass(frozen=True)
class ModelEntry:
    """A registered variant: its tables and the timm model that has released weights."""

    arch: Architecture
    timm_name: str | None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, arch: Architecture, timm_name: str | None = None) -> None:
    """Add a variant under `name`."""
    _REGISTRY[name] = ModelEntry(arch, timm_name)


def list_models() -> list[str]:
    """Names accepted by `create_model`, sorted."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for `name`, or a clear error listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}") from None


def create_model(
    name: str,
    num_classes: int = 1000,
    in_chans: int = 3,
    aux_head: bool | None = None,
    residual_scale: float | None = None,
    width: float = 1.0,
    drop_rate: float = 0.2,
    stem: Stem = 299,
    pretrained: bool = False,
    checkpoint_path: str | Path | None = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    trust_pickle: bool = False,
) -> InceptionNet:
    """Build a registered Inception variant.

    Args:
        name: one of `list_models()`.
        num_classes: classifier outputs; pretrained heads of another size are re-initialised.
        in_chans: input channels.
        aux_head: attach the auxiliary classifier; None takes the paper's choice.
        residual_scale: overrides every residual block's scale (1.0: the unscaled ablation).
        width: channel multiplier, for small models.
        drop_rate: dropout before the classifier.
        stem: 299, or a low-resolution stem 151 / 79 (v3 sect. 9).
        pretrained: load timm's released weights (downloads them through timm).
        checkpoint_path: a local state dict: ours, a Lightning checkpoint of ours, or timm's.
        pretrained_cfg_overlay: passed to timm with `pretrained`, e.g. `{"file": path}`.
        trust_pickle: let `checkpoint_path` unpickle arbitrary objects (it is loaded with
            `weights_only=True` otherwise); only for files you made yourself.
    """
    entry = get_entry(name)
    model = InceptionNet(
        name, entry.arch, num_classes, in_chans, aux_head, residual_scale, width, drop_rate, stem
    )
    if pretrained:
        if entry.timm_name is None:
            raise ValueError(f"{name} has no released weights; train it or pass checkpoint_path")
        import timm

        reference = timm.create_model(
            entry.timm_name,
            pretrained=True,
            in_chans=in_chans,
            pretrained_cfg_overlay=pretrained_cfg_overlay,
        )
        load_into(model, reference.state_dict(), f"timm {entry.timm_name}")
    if checkpoint_path is not None:
        state = read_state_dict(checkpoint_path, trust_pickle=trust_pickle)
        load_into(model, state, str(checkpoint_path))
    return model
