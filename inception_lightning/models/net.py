"""InceptionNet: any Inception variant assembled from its stage table."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from torch import Tensor, nn

from inception_lightning.models.blocks import InceptionBlock, ResidualInceptionBlock
from inception_lightning.models.heads import AuxHead, ClassifierHead
from inception_lightning.models.layers import layer_out_size, make_layer
from inception_lightning.models.options import Stem
from inception_lightning.models.specs import Conv, Pool, Stage


@dataclass(frozen=True)
class Architecture:
    """A variant's tables.

    Args:
        stems: stem stage rows per stem option (299 is the paper's; 151 and 79 are the
            low-resolution stems of v3 sect. 9, Table 2, where the variant allows them).
        body: the stage rows after the stem.
        aux_after: the stage whose output feeds the auxiliary head.
        aux_default: whether the paper uses the auxiliary head.
    """

    stems: Mapping[Stem, tuple[Stage, ...]]
    body: tuple[Stage, ...]
    aux_after: str
    aux_default: bool


def low_resolution_stems(stem: tuple[Stage, ...], first_pool: str) -> dict[Stem, tuple[Stage, ...]]:
    """The stems of v3 sect. 9, Table 2, derived from the 299 px stem.

    151: stride 1 in the first conv, the first max pool kept. 79: stride 1 and no
    `first_pool`. Both keep the final grid at 8 x 8.
    """
    first = stem[0]
    stem_151 = (replace(first, layer=replace(first.layer, stride=1)), *stem[1:])
    stem_79 = tuple(row for row in stem_151 if row.name != first_pool)
    return {299: stem, 151: stem_151, 79: stem_79}


class InputTooSmallError(ValueError):
    """An input is smaller than the network's minimum size."""


class InceptionNet(nn.Module):
    """An Inception network: `features` (stem and stages by end-point name), `head`, `aux`.

    `forward(x)` always returns logits; `forward_with_aux(x)` returns `(logits, aux or None)`.
    """

    def __init__(
        self,
        name: str,
        arch: Architecture,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_head: bool | None = None,
        residual_scale: float | None = None,
        width: float = 1.0,
        drop_rate: float = 0.2,  # TF-slim's dropout_keep_prob 0.8 (v4 paper Fig. 9)
        stem: Stem = 299,
    ) -> None:
        super().__init__()
        if stem not in arch.stems:
            choices = ", ".join(map(str, arch.stems))
            hint = " (stems are ints, not strings)" if isinstance(stem, str) else ""
            raise ValueError(f"{name} has no stem {stem!r}; choose one of {choices}{hint}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.name = name
        self.num_classes = num_classes
        self.stem = stem
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        chs = in_chans
        for row in (*arch.stems[stem], *arch.body):
            for layer_name in row.names():
                layers[layer_name], chs = _build(row, chs, width, residual_scale)
        self.features = nn.Sequential(layers)
        self.num_features = chs
        self.head = ClassifierHead(chs, num_classes, drop_rate)
        use_aux = arch.aux_default if aux_head is None else aux_head
        self.aux_after = arch.aux_after
        aux_chs = _channels_after(self.features, arch.aux_after)
        self.aux = AuxHead(aux_chs, num_classes, width) if use_aux else None
        self.min_input_size = _min_input_size(self)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, in train and eval mode alike."""
        return self.head(self._features(x, with_aux=False)[0])

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits and auxiliary logits (None without an aux head)."""
        features, aux = self._features(x, with_aux=True)
        return self.head(features), aux

    def forward_features(self, x: Tensor) -> Tensor:
        """The final feature map, before the global pool."""
        return self._features(x, with_aux=False)[0]

    def _features(self, x: Tensor, with_aux: bool) -> tuple[Tensor, Tensor | None]:
        if min(x.shape[-2:]) < self.min_input_size:
            raise InputTooSmallError(
                f"{self.name} (stem={self.stem!r}{', aux head' if self.aux else ''}) needs "
                f"inputs of at least {self.min_input_size}x{self.min_input_size}, got "
                f"{tuple(x.shape[-2:])}; resize the images, pick a low-resolution stem, "
                "or drop the aux head"
            )
        aux = None
        for name, layer in self.features.named_children():
            x = layer(x)
            if with_aux and self.aux is not None and name == self.aux_after:
                aux = self.aux(x)
        return x, aux

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (and aux) heads for `num_classes` outputs."""
        self.num_classes = num_classes
        self.head.fc = nn.Linear(self.head.fc.in_features, num_classes)
        if self.aux is not None:
            self.aux.fc = nn.Linear(self.aux.fc.in_features, num_classes)

    def spatial_sizes(self, size: int) -> OrderedDict[str, tuple[int, int]]:
        """The output grid of every stage for a `size` x `size` input (no forward pass)."""
        sizes: OrderedDict[str, tuple[int, int]] = OrderedDict()
        grid = (size, size)
        for name, layer in self.features.named_children():
            if isinstance(layer, InceptionBlock):
                grid = layer.out_size(grid)
            else:
                grid = layer_out_size(layer, grid)
            sizes[name] = grid
        return sizes


def _build(
    row: Stage, in_chs: int, width: float, residual_scale: float | None
) -> tuple[nn.Module, int]:
    if isinstance(row.layer, Conv | Pool):
        return make_layer(in_chs, row.layer, width)
    if row.residual_scale is None:
        block = InceptionBlock(in_chs, row.layer, width)
    else:
        scale = row.residual_scale if residual_scale is None else residual_scale
        block = ResidualInceptionBlock(in_chs, row.layer, scale, row.activate, width)
    return block, block.out_chs


def _channels_after(features: nn.Sequential, stage: str) -> int:
    chs = None
    for name, layer in features.named_children():
        chs = getattr(layer, "out_chs", chs)
        if name == stage:
            return chs
    raise KeyError(f"no stage named {stage!r}")


def _fits(net: InceptionNet, size: int) -> bool:
    sizes = net.spatial_sizes(size)
    if min(min(s) for s in sizes.values()) < 1:
        return False
    return net.aux is None or AuxHead.accepts(sizes[net.aux_after])


def _min_input_size(net: InceptionNet, limit: int = 4096) -> int:
    low, high = 1, limit  # fitting is monotone in the size: bisect for the smallest fit
    while low < high:
        mid = (low + high) // 2
        if _fits(net, mid):
            high = mid
        else:
            low = mid + 1
    return low
