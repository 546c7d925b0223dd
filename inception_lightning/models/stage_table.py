"""Per-stage architecture summary in the style of Table 1 of the v3 paper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from inception_lightning.models.net import InceptionNet


@dataclass(frozen=True)
class StageRow:
    """One stage: output grid, channels, parameters and multiply-adds per image."""

    name: str
    output_size: tuple[int, int]
    channels: int
    params: int
    macs: int


def _macs(module: nn.Module, output: Tensor) -> int:
    """Multiply-adds of one conv or linear layer for one image."""
    per_output = module.weight[0].numel()  # in_chs / groups * kernel area, or in_features
    return output[0].numel() * per_output


@torch.no_grad()
def summarize_stages(model: InceptionNet, input_size: int = 299) -> list[StageRow]:
    """Trace one image through `model` and account every stage, the aux head and the head."""
    stages: dict[str, nn.Module] = dict(model.features.named_children())
    if model.aux is not None:
        stages["aux"] = model.aux
    stages["head"] = model.head
    macs = dict.fromkeys(stages, 0)
    outputs: dict[str, Tensor] = {}
    handles = []
    for stage, module in stages.items():
        handles.append(module.register_forward_hook(_store(outputs, stage)))
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):
                handles.append(layer.register_forward_hook(_count(macs, stage)))
    was_training = model.training
    try:
        model.eval()
        model.forward_with_aux(torch.zeros(1, model_in_chans(model), input_size, input_size))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    sizes = model.spatial_sizes(input_size)
    rows = []
    for stage, module in stages.items():
        out = outputs[stage]
        size = sizes.get(stage, (1, 1))  # the heads output vectors
        params = sum(p.numel() for p in module.parameters())
        rows.append(StageRow(stage, size, out.shape[1], params, macs[stage]))
    return rows


def model_in_chans(model: InceptionNet) -> int:
    """Input channels of the first conv."""
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels


Hook = Callable[[nn.Module, tuple, Tensor], None]


def _store(outputs: dict[str, Tensor], stage: str) -> Hook:
    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        outputs[stage] = output

    return hook


def _count(macs: dict[str, int], stage: str) -> Hook:
    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        macs[stage] += _macs(module, output)

    return hook


def format_summary(rows: list[StageRow], title: str) -> str:
    """A plain-text table with totals, ready to print."""
    header = f"{'stage':<16}{'output':>11}{'channels':>10}{'params':>14}{'mult-adds':>16}"
    lines = [title, header, "-" * len(header)]
    for row in rows:
        grid = f"{row.output_size[0]}x{row.output_size[1]}"
        lines.append(f"{row.name:<16}{grid:>11}{row.channels:>10}{row.params:>14,}{row.macs:>16,}")
    lines.append("-" * len(header))
    total_params = sum(r.params for r in rows)
    total_macs = sum(r.macs for r in rows)
    lines.append(f"{'total':<16}{'':>11}{'':>10}{total_params:>14,}{total_macs:>16,}")
    lines.append(f"{total_macs / 1e9:.2f} G multiply-adds, {total_params / 1e6:.2f} M parameters")
    return "\n".join(lines)
