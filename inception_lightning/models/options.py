"""`ModelOptions`: the typed network options of `create_model`, for the CLI and checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Integers, so that YAML's `stem: 79` and `stem: "79"` both parse; the network takes either.
Stem = Literal[299, 151, 79]


@dataclass(frozen=True)
class ModelOptions:
    """How the registered network is built (the arguments of `create_model` besides its name).

    Args:
        width: channel multiplier (1.0: the paper's widths; 0.125 for a CPU-sized network).
        stem: 299 (the paper's), or a low-resolution stem, 151 or 79 (v3 paper sect. 9,
            Table 2), which keeps the final 8x8 grid for inputs of that size.
        aux_head: attach the auxiliary classifier; null takes the paper's choice (v3: yes).
        residual_scale: scale of every residual (Inception-ResNet); null takes the paper's
            per-grid scales, 1.0 is the unscaled ablation.
        drop_rate: dropout before the classifier (TF-slim: keep 0.8).
    """

    width: float = 1.0
    stem: Stem = 299
    aux_head: bool | None = None
    residual_scale: float | None = None
    drop_rate: float = 0.2

    @classmethod
    def of(cls, value: ModelOptions | Mapping[str, Any] | None) -> ModelOptions:
        """The options from a dataclass, a mapping (a checkpoint's hyperparameters) or None.

        Raises:
            ValueError: naming a key that is not an option, and the valid ones.
        """
        if value is None or isinstance(value, ModelOptions):
            return value or cls()
        unknown = sorted(set(value) - set(option_names()))
        if unknown:
            raise ValueError(
                f"model_kwargs has no option {', '.join(map(repr, unknown))}; "
                f"the options are {', '.join(option_names())}"
            )
        return cls(**value)

    def as_kwargs(self) -> dict[str, Any]:
        """Plain values by name: `create_model` keywords, and checkpoint hyperparameters that
        load with `weights_only=True`."""
        return dataclasses.asdict(self)


def option_names() -> list[str]:
    """The options' names, in declaration order."""
    return [field.name for field in dataclasses.fields(ModelOptions)]
