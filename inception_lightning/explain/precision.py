"""Attributions in fp32, whatever precision the network trains in."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def fp32(model: nn.Module) -> Iterator[nn.Module]:
    """`model` to attribute in fp32, with autocast off on its device.

    The model itself when its weights are fp32 or wider (fp32 and mixed-precision training);
    an fp32 copy when they are bf16 or fp16 (`bf16-true`, `16-true`). In bf16 (8-bit
    mantissas) maps and scores would change with the training precision.
    """
    weights = next(model.parameters())
    low = any(p.is_floating_point() and p.dtype.itemsize < 4 for p in model.parameters())
    with torch.autocast(weights.device.type, enabled=False):
        yield copy.deepcopy(model).float() if low else model
