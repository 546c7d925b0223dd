"""Which precision a CPU run trains in: bf16 where the CPU computes it natively, else fp32.

On a CPU with AMX-BF16 or AVX512-BF16 (Xeon Sapphire Rapids and later, AMD Zen 4 and later),
oneDNN runs bf16 convolutions in hardware, and `conf/trainer/cpu.yaml` (bf16-mixed,
channels_last) trains Inception-v3 about 1.8x faster than fp32. Elsewhere bf16 is emulated
with fp32 arithmetic plus conversions, slower than fp32 itself, so fp32 stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# torch's names for the CPU features that compute bf16 natively, and how the run names them.
NATIVE_BF16 = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def cpu_capabilities() -> Mapping[str, Any] | None:
    """The CPU's features as torch detects them; None where torch cannot tell (before the
    public `torch.cpu.get_capabilities`)."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    return None if get_capabilities is None else get_capabilities()


def native_bf16() -> str | None:
    """The CPU's native bf16 feature ("AMX-BF16" or "AVX512-BF16"), or None without one."""
    capabilities = cpu_capabilities() or {}
    return next((name for key, name in NATIVE_BF16.items() if capabilities.get(key)), None)


@dataclass(frozen=True)
class RecipeChoice:
    """Whether to compose the CPU recipe, and why, in words for the run's first line."""

    apply: bool
    reason: str


def choose_cpu_recipe(precision: str | int | None, accelerator: Any) -> RecipeChoice:
    """Compose the CPU recipe only for a CPU run whose precision nobody chose, on native bf16.

    Args:
        precision: the run's `trainer.precision` from its configs and flags (None: unset).
        accelerator: the run's `trainer.accelerator`.
    """
    if precision is not None:
        return RecipeChoice(False, "as configured (an explicit precision wins)")
    if accelerator != "cpu":
        return RecipeChoice(False, f"the CPU recipe is for accelerator cpu, not {accelerator}")
    if cpu_capabilities() is None:
        return RecipeChoice(
            False,
            f"torch {torch.__version__} cannot report CPU features; with AMX or AVX512-BF16 "
            "pass --trainer.precision bf16-mixed --model.compute.channels_last true",
        )
    feature = native_bf16()
    if feature is None:
        return RecipeChoice(
            False, "no native bf16 on this CPU (AMX or AVX512-BF16): fp32 is faster"
        )
    return RecipeChoice(True, f"this CPU computes bf16 natively ({feature})")


def precision_line(config: Any, choice: RecipeChoice, recipe: str | Path) -> str:
    """The run's first line: its precision, its memory layout and why (`config` is the run's
    parsed configuration, with `trainer.precision` and `model.compute.channels_last`)."""
    layout = "channels_last" if config.model.compute.channels_last else "contiguous format"
    source = f" (composed {recipe})" if choice.apply else ""
    return f"precision {config.trainer.precision or '32-true'}, {layout}{source}: {choice.reason}"
