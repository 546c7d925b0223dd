"""Classifier and auxiliary heads."""

from __future__ import annotations

from torch import Tensor, nn

from inception_lightning.models.layers import ConvBNAct
from inception_lightning.models.specs import Conv, Pool, out_size, scale_chs


class ClassifierHead(nn.Module):
    """Global average pool, dropout and a linear layer."""

    def __init__(self, in_chs: int, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_chs, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.drop(self.flatten(self.pool(x))))


class AuxHead(nn.Module):
    """The v3 auxiliary classifier with BatchNorm in its convs ("BN-auxiliary", v3 sect. 7).

    avg pool 5x5/3 -> 1x1 conv 128 -> 5x5 conv 768 -> linear, as TF-slim and timm build it.
    It needs a grid of at least 17x17 (5x5 after the pool).
    """

    POOL = Pool("avg", kernel=5, stride=3)
    CONV0 = Conv(128)
    CONV1 = Conv(768, kernel=5)

    def __init__(self, in_chs: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(self.POOL.kernel, self.POOL.stride)
        self.conv0 = ConvBNAct(in_chs, self.CONV0, width)
        self.conv1 = ConvBNAct(self.conv0.out_chs, self.CONV1, width)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(scale_chs(self.CONV1.out_chs, width), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.gap(self.conv1(self.conv0(self.pool(x))))))

    @classmethod
    def accepts(cls, size: tuple[int, int]) -> bool:
        """Whether a grid of `size` is large enough for the head."""
        size = out_size(out_size(out_size(size, cls.POOL), cls.CONV0), cls.CONV1)
        return min(size) >= 1
