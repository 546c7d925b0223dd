"""`hold_out`: the seeded, per-class validation split of a tree without a `val/` folder."""

from __future__ import annotations

import random
from collections import defaultdict

from inception_lightning.data.scanning.scan import ImageRecord


def hold_out(
    records: list[ImageRecord], fraction: float, seed: int
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Split off `fraction` of each class (at least one image stays in training), seeded."""
    rng = random.Random(seed)
    by_label: dict[int, list[ImageRecord]] = defaultdict(list)
    for record in records:
        by_label[record.label].append(record)
    train, val = [], []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        num_val = min(round(len(group) * fraction), len(group) - 1)
        val += group[:num_val]
        train += group[num_val:]
    return train, val
