"""ROAD: noisy linear imputation by hand, and MoRF/LeRF curves on a model that reads one patch."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from inception_lightning.explain import (
    linear_imputation,
    noisy_linear_imputation,
    road_check,
    road_curves,
)

D, G = 1 / 6, 1 / 12  # direct and diagonal neighbour weights


def test_a_removed_pixel_becomes_its_neighbours_weighted_mean() -> None:
    image = torch.arange(9.0).view(1, 1, 3, 3) ** 2
    centre = torch.zeros(1, 3, 3, dtype=torch.bool)
    centre[0, 1, 1] = True
    v = image[0, 0]
    hand = D * (v[0, 1] + v[1, 0] + v[1, 2] + v[2, 1]) + G * (v[0, 0] + v[0, 2] + v[2, 0] + v[2, 2])
    filled = linear_imputation(image, centre)
    assert filled[0, 0, 1, 1].item() == pytest.approx(hand.item(), abs=1e-5)
    assert torch.equal(
        filled.masked_fill(centre[:, None], 0), image.masked_fill(centre[:, None], 0)
    )
    corner = torch.zeros(1, 3, 3, dtype=torch.bool)
    corner[0, 0, 0] = True  # only 3 neighbours in the frame: their weights, renormalised
    expected = (D * v[0, 1] + D * v[1, 0] + G * v[1, 1]) / (2 * D + G)
    assert linear_imputation(image, corner)[0, 0, 0, 0].item() == pytest.approx(
        expected.item(), abs=1e-5
    )


def test_two_neighbouring_holes_are_solved_together() -> None:
    """A 3x4 image with its two middle pixels removed: each is the weighted mean of its
    neighbours, the other hole included; the 2x2 system solved by hand."""
    image = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 0.0, 0.0, 8.0], [9.0, 10.0, 11.0, 12.0]])
    removed = torch.zeros(1, 3, 4, dtype=torch.bool)
    removed[0, 1, 1:3] = True
    # a = D*(2 + 5 + 10 + b) + G*(1 + 3 + 9 + 11); b = D*(3 + 8 + 11 + a) + G*(2 + 4 + 10 + 12)
    ka = D * 17 + G * 24
    kb = D * 22 + G * 28
    a = (ka + D * kb) / (1 - D * D)
    b = kb + D * a
    filled = linear_imputation(image.view(1, 1, 3, 4), removed)
    assert filled[0, 0, 1, 1:3].tolist() == pytest.approx([a, b], abs=1e-5)


def test_noise_lands_on_removed_pixels_only_and_is_seeded() -> None:
    images = torch.zeros(2, 3, 40, 40)
    removed = torch.zeros(2, 40, 40, dtype=torch.bool)
    removed[:, 10:30, 10:30] = True

    def draw(seed: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed)
        return noisy_linear_imputation(images, removed, 0.01, generator)

    noisy = draw(0)
    assert torch.equal(noisy[:, :, ~removed[0]], images[:, :, ~removed[0]])
    assert float(noisy[:, :, removed[0]].std()) == pytest.approx(0.01, rel=0.05)
    assert torch.equal(draw(0), noisy) and not torch.equal(draw(1), noisy)


class PatchReader(nn.Module):
    """Class 0's logit is 4 x the mean of the top-left 8x8 patch (all channels); class 1's is
    0: removing the patch's bright pixels lowers class 0's probability."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        score = 4 * x[:, :, :8, :8].mean(dim=(1, 2, 3))
        return torch.stack([score, torch.zeros_like(score)], dim=1) + self.anchor


def test_a_map_on_the_evidence_beats_its_reverse_and_empty_maps_get_no_curve() -> None:
    images = torch.zeros(3, 3, 24, 24)
    images[:, :, :8, :8] = 1.0  # bright patch: the evidence for class 0
    right = torch.zeros(3, 24, 24)
    right[:, :8, :8] = 1.0
    right += torch.linspace(0, 0.1, 24 * 24).view(24, 24)  # no ties elsewhere
    maps = torch.stack([right[0], -right[1], torch.zeros(24, 24)])  # right, reversed, empty
    curves = road_curves(PatchReader(), images, maps, [0, 0, 0], fractions=(0.2, 0.5), noise=0)
    intact = 1 / (1 + math.exp(-4.0))
    assert curves.fractions == [0.0, 0.2, 0.5]
    assert curves.morf[:2, 0].tolist() == pytest.approx([intact, intact])
    # 20% of 576 pixels = 115 > 64: the right map's MoRF removes the whole patch, which its
    # known neighbours (zeros, and the frame) impute to 0: probability 0.5; its LeRF keeps it
    assert curves.morf[0, 1:].tolist() == pytest.approx([0.5, 0.5], abs=1e-3)
    assert curves.lerf[0, 1:].tolist() == pytest.approx([intact, intact], abs=1e-3)
    assert curves.morf[1, 1:].tolist() == pytest.approx([intact, intact], abs=1e-3)
    assert curves.lerf[1, 1:].tolist() == pytest.approx([0.5, 0.5], abs=1e-3)
    combined = curves.combined
    assert combined[:2].tolist() == pytest.approx(
        [(intact - 0.5) / 2, (0.5 - intact) / 2], abs=1e-3
    )
    assert math.isnan(combined[2])
    assert curves.lerf_hits[0].tolist() == [1.0, 1.0, 1.0]  # class 0 stays on top
    assert curves.morf[2].isnan().all()
    check = road_check(curves)
    assert check.name == "road" and check.verdict.images == 2
    assert check.verdict.outcome == "undecided"  # 2 images: too few to decide
