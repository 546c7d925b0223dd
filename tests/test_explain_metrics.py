"""Attribution metrics against hand computations on tiny inputs."""

import math

import pytest
import torch
from torch import nn

from inception_lightning.explain import (
    auc,
    blur,
    boxes_to_masks,
    deletion_auc,
    energy_pointing_game,
    insertion_auc,
    perturbation_curve,
    pointing_game,
    scaled_tolerance,
)


class MeanLogit(nn.Module):
    """Logits (mean of the image, 0): the class-0 probability is sigmoid(mean)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3))
        return torch.stack([mean, torch.zeros_like(mean)], dim=1) + self.anchor


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_boxes_to_masks() -> None:
    masks = boxes_to_masks([[1, 0, 3, 2]], (3, 4))
    assert masks[0].int().tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


def test_pointing_game_with_tolerance() -> None:
    masks = torch.zeros(3, 5, 5, dtype=torch.bool)
    masks[:, 0, 0] = True  # the object is the top-left pixel
    maps = torch.zeros(3, 5, 5)
    maps[0, 0, 0] = 1  # on the object
    maps[1, 1, 1] = 1  # sqrt(2) away
    maps[2, 3, 4] = 1  # 5 away
    assert pointing_game(maps, masks, tolerance=0).tolist() == [1, 0, 0]
    assert pointing_game(maps, masks, tolerance=1).tolist() == [1, 0, 0]
    assert pointing_game(maps, masks, tolerance=2).tolist() == [1, 1, 0]
    assert pointing_game(maps, masks, tolerance=5).tolist() == [1, 1, 1]
    # an empty map points nowhere: NaN, not a hit or a miss at pixel (0, 0)
    assert pointing_game(torch.zeros(1, 5, 5), masks[:1], tolerance=0).isnan().all()
    tied = torch.full((1, 5, 5), 0.5)  # a constant, non-zero map ties: raster order
    assert pointing_game(tied, masks[:1], tolerance=0).tolist() == [1]


def test_energy_pointing_game() -> None:
    maps = torch.tensor(
        [[[1.0, 3.0], [-4.0, 0.0]], [[-1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]
    )
    masks = torch.tensor([[[False, True], [True, True]]] * 3)
    # positive energy 1 + 3 = 4, of which 3 inside; no positive energy scores 0; empty: NaN
    torch.testing.assert_close(
        energy_pointing_game(maps, masks), torch.tensor([0.75, 0.0, float("nan")]), equal_nan=True
    )
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        energy_pointing_game(maps, masks[0])


def test_empty_maps_get_no_deletion_or_insertion_score() -> None:
    x = torch.tensor([[[[4.0, 2.0], [1.0, 1.0]]]]).repeat(2, 1, 1, 1)
    maps = torch.tensor([[[0.9, 0.1], [0.5, 0.5]], [[0.0, 0.0], [0.0, 0.0]]])
    for metric in (deletion_auc, insertion_auc):
        scores = metric(MeanLogit(), x, maps, [0, 0], steps=2)
        assert scores[0].isfinite() and scores[1].isnan()


def test_deletion_auc_by_hand() -> None:
    x = torch.tensor([[[[4.0, 2.0], [1.0, 1.0]]]])
    saliency = torch.tensor([[[0.9, 0.1], [0.5, 0.5]]])  # order: (0,0), (1,0), (1,1), (0,1)
    # steps=2 moves 0, 2, then 4 pixels to the baseline 0: means 2, 0.75, 0
    probs = [sigmoid(2.0), sigmoid(0.75), sigmoid(0.0)]
    curve = perturbation_curve(MeanLogit(), x, torch.zeros_like(x), saliency, [0], steps=2)
    torch.testing.assert_close(curve, torch.tensor([probs]))
    hand = (probs[0] / 2 + probs[1] + probs[2] / 2) / 2
    torch.testing.assert_close(
        deletion_auc(MeanLogit(), x, saliency, [0], steps=2), torch.tensor([hand])
    )
    # steps=4: means 2, 1, 0.75, 0.5, 0
    probs = [sigmoid(v) for v in (2.0, 1.0, 0.75, 0.5, 0.0)]
    hand = (sum(probs) - probs[0] / 2 - probs[-1] / 2) / 4
    torch.testing.assert_close(
        deletion_auc(MeanLogit(), x, saliency, [0], steps=4), torch.tensor([hand])
    )


def test_insertion_auc_by_hand_and_directions() -> None:
    x = torch.tensor([[[[4.0, 2.0], [1.0, 1.0]]]])
    good = torch.tensor([[[0.9, 0.1], [0.5, 0.5]]])
    bad = -good
    substrate = torch.zeros_like(x)
    # steps=2 pastes 0, 2, then 4 pixels onto zeros: means 0, 1.25, 2
    probs = [sigmoid(0.0), sigmoid(1.25), sigmoid(2.0)]
    hand = (probs[0] / 2 + probs[1] + probs[2] / 2) / 2
    got = insertion_auc(MeanLogit(), x, good, [0], steps=2, substrate=substrate)
    torch.testing.assert_close(got, torch.tensor([hand]))
    # a map that ranks the evidence first inserts it first and deletes it first
    model = MeanLogit()
    assert insertion_auc(model, x, good, [0], 4, substrate) > insertion_auc(
        model, x, bad, [0], 4, substrate
    )
    assert deletion_auc(model, x, good, [0], 4) < deletion_auc(model, x, bad, [0], 4)


def test_batched_curves_equal_one_by_one_and_auc() -> None:
    torch.manual_seed(0)
    x, maps = torch.randn(3, 3, 6, 6), torch.rand(3, 6, 6)
    batched = insertion_auc(MeanLogit(), x, maps, [0, 1, 0], steps=3)
    single = torch.cat(
        [
            insertion_auc(MeanLogit(), x[i : i + 1], maps[i : i + 1], [t], steps=3)
            for i, t in enumerate([0, 1, 0])
        ]
    )
    torch.testing.assert_close(batched, single)
    torch.testing.assert_close(auc(torch.tensor([[0.0, 1.0, 0.0]])), torch.tensor([0.5]))


def test_blur_keeps_constants_and_mass() -> None:
    flat = torch.full((1, 3, 16, 16), 2.0)
    torch.testing.assert_close(blur(flat), flat)
    spike = torch.zeros(1, 1, 21, 21)
    spike[0, 0, 10, 10] = 1
    blurred = blur(spike)
    torch.testing.assert_close(blurred.sum(), torch.tensor(1.0))
    assert blurred[0, 0, 10, 10] == blurred.max() < 1


def test_default_tolerance_scales_the_papers_15_px_to_the_image() -> None:
    assert scaled_tolerance(224, 224) == 15
    assert scaled_tolerance(79, 79) == 5
    masks = torch.zeros(2, 79, 79, dtype=torch.bool)
    masks[:, 40:, :] = True  # the object fills the bottom half, from row 40 down
    maps = torch.zeros(2, 79, 79)
    maps[0, 35, 10] = 1.0  # 5 rows above the object: within 5 px
    maps[1, 34, 10] = 1.0  # 6 rows above: outside
    assert pointing_game(maps, masks).tolist() == [1.0, 0.0]
