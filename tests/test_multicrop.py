"""Multi-crop views, softmax averaging, and the test step over crops and an ensemble."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from inception_lightning import create_model
from inception_lightning.training.evaluation import average_probs, crop_views
from inception_lightning.training.module import InceptionClassifier

TINY = {"width": 0.0625, "stem": "299", "aux_head": False}


@pytest.mark.parametrize(("crops", "height", "width"), [(12, 40, 56), (144, 40, 56), (144, 56, 40)])
def test_view_counts_and_shapes(crops: int, height: int, width: int) -> None:
    images = torch.randn(2, 3, height, width)
    views = list(crop_views(images, crop_size=28, crops=crops))

    assert len(views) == crops
    assert all(v.shape == (2, 3, 28, 28) for v in views)
    assert all(torch.equal(views[i + 1], views[i].flip(-1)) for i in range(0, crops, 2))
    with pytest.raises(ValueError, match="12 or 144"):
        next(crop_views(images, 28, 10))


def test_144_crops_cover_three_squares_per_scale() -> None:
    images = torch.arange(32 * 64, dtype=torch.float32).reshape(1, 1, 32, 64)
    views = list(crop_views(images, crop_size=28, crops=144))
    # first scale: shorter side round(28 * 256 / 224) = 32, so no resize; squares at x 0, 16, 32
    left_top_left, centre_top_left = views[0], views[12]
    assert torch.equal(left_top_left, images[..., :28, :28])
    assert torch.equal(centre_top_left, images[..., :28, 16:44])


def channel_means(view: Tensor) -> Tensor:
    return view.mean(dim=(2, 3)) * 10.0


def test_probabilities_average_over_views_and_networks() -> None:
    images = torch.rand(2, 3, 40, 48)
    views = list(crop_views(images, 28, 12))
    expected_one = torch.stack([channel_means(v).softmax(-1) for v in views]).mean(0)

    one = average_probs([channel_means], images, crops=12, crop_size=28)
    torch.testing.assert_close(one, expected_one)

    def doubled(view: Tensor) -> Tensor:
        return 2.0 * channel_means(view)

    expected_two = torch.stack([channel_means(images).softmax(-1), doubled(images).softmax(-1)])
    two = average_probs([channel_means, doubled], images)
    torch.testing.assert_close(two, expected_two.mean(0))
    torch.testing.assert_close(two.sum(-1), torch.ones(2))


def test_test_step_evaluates_crops_and_an_ensemble_of_checkpoints(tmp_path) -> None:
    member = create_model("inception_v3", num_classes=4, **TINY)
    torch.save(member.state_dict(), tmp_path / "member.pt")
    module = InceptionClassifier(
        num_classes=4,
        model_kwargs=TINY,
        test_crops=12,
        test_crop_size=75,
        ensemble_checkpoints=[str(tmp_path / "member.pt")],
    )
    images, labels = torch.randn(4, 3, 90, 96), torch.arange(4)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)

    (results,) = trainer.test(module, DataLoader(TensorDataset(images, labels), batch_size=4))

    module.eval()
    with torch.no_grad():
        probs = average_probs([module.model, member.eval()], images, crops=12, crop_size=75)
    assert results["test/acc1"] == pytest.approx((probs.argmax(-1) == labels).float().mean().item())
    assert set(results) == {"test/loss", "test/acc1", "test/acc5", "test/ece"}
