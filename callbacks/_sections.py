"""Where the diagnostics callbacks' figures go in TensorBoard: small sections, after the loss.

TensorBoard's Time Series groups cards into sections by a tag's first path component and
orders them by tag name. Every diagnostics section starts with `watch.`, which sorts after
`train`, `val` and `val_ema`, so the loss and accuracy come first. Per-branch statistics are
split by statistic and by grid, so that no section holds more than about 60 cards even for
Inception-ResNet-v2's 101 branches (its 17x17 grid has the most: 43); the heat map of every
branch (`HEATMAP`) is the overview, in the first of them.
"""

from __future__ import annotations

from torch import nn

from inception_lightning.models.anatomy import Anatomy

PREFIX = "watch"
HEATMAP = f"{PREFIX}.branch/heatmap"
DYING = f"{PREFIX}.dying"


def grids(anatomy: Anatomy, network: nn.Module) -> dict[str, str]:
    """Each Inception block's output grid, e.g. "17x17", at the input size the network is built
    for (299 px; 151 or 79 for our low-resolution stems), by block name; "" for all when layers
    of the user's own make the shapes untraceable (`Anatomy.grids` fails on them)."""
    try:
        sizes = anatomy.grids(network)
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return {block.name: "" for block in anatomy.blocks}
    return {block.name: "x".join(map(str, sizes[block.name])) for block in anatomy.blocks}


def branch_tag(stat: str, grid: str, block: str, branch: str) -> str:
    """`watch.branch.<stat>.<grid>/<block>/<branch>`, e.g. a histogram's stat is "activation"."""
    section = f"{PREFIX}.branch.{stat}" + (f".{grid}" if grid else "")
    return f"{section}/{block}/{branch}"


def block_tag(kind: str, stat: str, block: str) -> str:
    """`watch.<kind>.<stat>/<block>` for a residual block's `residual` or `shortcut`."""
    return f"{PREFIX}.{kind}.{stat}/{block}"
