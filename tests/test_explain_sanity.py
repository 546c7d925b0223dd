"""Cascading randomisation (Adebayo et al. 2018): Grad-CAM on a trained tiny net passes, an
edge detector that ignores the model fails, and the check leaves the model as it was."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional import spearman_corrcoef

from inception_lightning import create_model
from inception_lightning.explain import (
    RANK_THRESHOLD,
    Attribution,
    cascade_units,
    cascading_randomization,
    make_attribution,
    rank_correlation,
)
from inception_lightning.explain.attribution import normalize_maps

SIZE = 47


def squares(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A bright 14 px square in the channel of the image's class (0-2), on noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, SIZE, SIZE, generator=g) * 0.3
    labels = torch.arange(n) % 3
    corners = torch.randint(0, SIZE - 14, (n, 2), generator=g)
    for i, (y, c) in enumerate(corners.tolist()):
        x[i, labels[i], y : y + 14, c : c + 14] += 2.0
    return x, labels


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    """A tiny Inception-v3 that learned which channel holds the square (60 Adam steps)."""
    torch.manual_seed(0)
    model = create_model("inception_v3", num_classes=3, width=0.0625, stem=79, aux_head=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(60):
        x, y = squares(16, seed=step)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    x, y = squares(30, seed=1000)
    with torch.no_grad():
        assert (model(x).argmax(dim=1) == y).float().mean() > 0.9  # it learned the task
    return model


class EdgeDetector(Attribution):
    """A test double that ignores the model: the Sobel gradient magnitude of the input."""

    name = "edges"

    def _bind(self, model: nn.Module) -> None:
        pass

    def _maps(self, inputs: Tensor, targets: list[int]) -> Tensor:
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        gray = inputs.mean(dim=1, keepdim=True)
        gx = F.conv2d(gray, kx.view(1, 1, 3, 3), padding=1)
        gy = F.conv2d(gray, kx.T.reshape(1, 1, 3, 3), padding=1)
        return normalize_maps((gx**2 + gy**2).sqrt()[:, 0])


def test_randomising_a_trained_model_breaks_gradcam_maps(trained: nn.Module) -> None:
    x, y = squares(6, seed=2000)
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    rng = torch.random.get_rng_state()
    curve = cascading_randomization(make_attribution("gradcam", trained), x, y)
    assert curve.depths[:3] == ["head", "features.mixed_7c", "features.mixed_7b"]
    assert curve.images + curve.empty == 6 and curve.images >= 4
    assert len(curve.rank_correlation) == len(curve.ssim) == len(cascade_units(trained))
    assert curve.verdict_depth == 2 and curve.threshold == RANK_THRESHOLD
    assert curve.passed, curve.rank_correlation
    assert curve.verdict_correlation < RANK_THRESHOLD
    assert all(torch.equal(v, before[k]) for k, v in trained.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert curve.as_dict()["passed"] is True


def test_an_edge_detector_that_ignores_the_model_fails(trained: nn.Module) -> None:
    x, y = squares(6, seed=2000)
    curve = cascading_randomization(EdgeDetector(trained), x, y, max_depth=4)
    assert curve.rank_correlation == pytest.approx([1.0] * 4)
    assert curve.ssim == pytest.approx([1.0] * 4)
    assert not curve.passed


def test_the_same_seed_gives_the_same_curve(trained: nn.Module) -> None:
    x, y = squares(3, seed=3000)
    method = make_attribution("layercam", trained)
    a = cascading_randomization(method, x, y, max_depth=3, seed=1)
    b = cascading_randomization(method, x, y, max_depth=3, seed=1)
    c = cascading_randomization(method, x, y, max_depth=3, seed=2)
    assert a == b and a.rank_correlation != c.rank_correlation


def test_cascade_units_run_from_the_head_down_and_skip_parameter_free_stages() -> None:
    model = create_model("inception_v3", num_classes=3, width=0.0625, aux_head=False)
    names = [name for name, _ in cascade_units(model)]
    stages = [name for name, _ in model.features.named_children()]
    assert names[0] == "head" and names[1] == "features.mixed_7c"
    assert names[-1] == f"features.{stages[0]}" and len(names) == len(stages) - 2 + 1
    assert "features.maxpool_3a_3x3" not in names  # the stem's max pools have no weights
    assert "maxpool_3a_3x3" in stages and "maxpool_5a_3x3" in stages


def test_rank_correlation_by_hand_and_on_large_tied_maps() -> None:
    a = torch.tensor([[[1.0, 2.0, 2.0, 4.0]]])
    b = torch.tensor([[[1.0, 3.0, 2.0, 4.0]]])
    # ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4); centred (-1.5, 0, 0, 1.5) and (-1.5, .5, -.5, 1.5)
    hand = (2.25 + 2.25) / ((4.5**0.5) * (5.0**0.5))
    torch.testing.assert_close(rank_correlation(a, b), torch.tensor([hand]))
    torch.testing.assert_close(
        rank_correlation(a, b)[0], spearman_corrcoef(a.flatten(), b.flatten())
    )
    assert rank_correlation(a, torch.zeros_like(a)).tolist() == [0.0]  # constant: 0
    # 299 px ReLU-like maps, mostly zero: torchmetrics' int32 tie ranks overflow here
    big = torch.zeros(1, 299, 299)
    big[0, :40, :40] = torch.rand(40, 40) + 0.1
    assert rank_correlation(big, big.sqrt()).item() == pytest.approx(1.0)
    assert rank_correlation(big, -big).item() == pytest.approx(-1.0)
