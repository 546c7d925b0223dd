"""Where the diagnostics callbacks' figures go in TensorBoard: small sections, after the loss.

TensorBoard's Time Series groups cards into sections by a tag's first path component and
orders them by tag name. Every diagnostics section starts with `watch.`, which sorts after
`train`, `val` and `val_ema`, so the loss and accuracy come first. Per-branch statistics are
split by statistic and by grid, so that no section holds more than about 60 cards even for
Inception-ResNet-v2's 101 branches (its 17x17 grid has the most: 43); the heat map of every
branch (`HEATMAP`) is the overview, in the first of them.
"""

from __future__ import annotations

from inception_lightning.callbacks._probe import short_name
from inception_lightning.models import InceptionNet, iter_blocks

PREFIX = "watch"
HEATMAP = f"{PREFIX}.branch/heatmap"
DYING = f"{PREFIX}.dying"


def grids(network: InceptionNet) -> dict[str, str]:
    """Each Inception block's output grid, e.g. "17x17", at the input size its stem is built
    for (299, 151 or 79 px), by block name; "" for all when a module of unknown geometry (a
    user's own) makes the sizes unknowable without a forward pass."""
    names = [short_name(dotted) for dotted, _ in iter_blocks(network)]
    try:
        sizes = network.spatial_sizes(int(network.stem))
    except TypeError:
        return dict.fromkeys(names, "")
    return {name: "x".join(map(str, sizes[name])) for name in names}


def branch_tag(stat: str, grid: str, block: str, branch: str) -> str:
    """`watch.branch.<stat>.<grid>/<block>/<branch>`, e.g. a histogram's stat is "activation"."""
    section = f"{PREFIX}.branch.{stat}" + (f".{grid}" if grid else "")
    return f"{section}/{block}/{branch}"


def block_tag(kind: str, stat: str, block: str) -> str:
    """`watch.<kind>.<stat>/<block>` for a residual block's `residual` or `shortcut`."""
    return f"{PREFIX}.{kind}.{stat}/{block}"
