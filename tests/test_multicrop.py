"""Multi-crop testing as the paper does it: whole images, 144 distinct views, one at a time."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY, write_tree
from lightning.pytorch import Trainer
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from inception_lightning import create_model
from inception_lightning.data import (
    CropOptions,
    ImageFolderDataModule,
    LoaderOptions,
    MultiCrop,
    MultiCropViews,
)
from inception_lightning.data.transforms.preprocessing import Normalize, Preprocessing
from inception_lightning.training.ensembling import average_probs
from inception_lightning.training.module import InceptionClassifier

NORMALIZE = Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _views(images: Tensor, size: int, crops: int) -> list[Tensor]:
    """The views of uint8 images `[B, 3, H, W]`, cut as the datamodule and the loader cut them."""
    preprocessing = Preprocessing(image_size=size, interpolation="bilinear")
    per_image = [MultiCrop(preprocessing, crops)(image) for image in images]
    squares = [torch.stack(scale) for scale in zip(*per_image, strict=True)]
    return list(MultiCropViews(squares, size, "bilinear", NORMALIZE))


@pytest.mark.parametrize(("crops", "height", "width"), [(12, 40, 56), (144, 40, 56), (144, 56, 40)])
def test_view_counts_shapes_and_mirrors(crops: int, height: int, width: int) -> None:
    images = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8)
    views = _views(images, 28, crops)

    assert len(views) == crops
    assert all(v.shape == (2, 3, 28, 28) and v.dtype == torch.float32 for v in views)
    assert all(torch.equal(views[i + 1], views[i].flip(-1)) for i in range(0, crops, 2))
    with pytest.raises(ValueError, match="12 or 144"):
        MultiCrop(Preprocessing(image_size=28), 1)
    with pytest.raises(ValueError, match=r"\(1, 12, 144\)"):
        MultiCrop(Preprocessing(image_size=28), 10)


def test_views_come_from_the_whole_image_resized_on_its_shorter_side() -> None:
    images = torch.randint(0, 256, (1, 3, 32, 64), dtype=torch.uint8)
    views = _views(images, 28, 144)
    # first scale: shorter side round(28 * 256 / 224) = 32, the image's own: no resize; the
    # squares start at x = 0, 16 and 32, and their first view is the top-left corner
    assert torch.equal(views[0], NORMALIZE(images[..., :28, :28]))
    assert torch.equal(views[12], NORMALIZE(images[..., :28, 16:44]))
    assert torch.equal(views[24], NORMALIZE(images[..., :28, 32:60]))
    # last scale: shorter side round(28 * 352 / 224) = 44; its centre square's centre view
    scaled = TF.resize(images, [44], InterpolationMode.BILINEAR, antialias=True)
    centre_square = scaled[..., :, (scaled.shape[-1] - 44) // 2 :][..., :44]
    assert torch.equal(views[3 * 36 + 12 + 8], NORMALIZE(centre_square[..., 8:36, 8:36]))


def _distinct(views: list[Tensor], item: int) -> int:
    return len({tuple(view[item].flatten().tolist()) for view in views})


def test_a_non_square_image_gives_144_distinct_views_through_the_folder_datamodule(
    tmp_path,
) -> None:
    root = write_tree(tmp_path / "data", splits=("train", "val", "test"), n=1, size=(120, 90))
    write_tree(tmp_path / "data", classes=("cat",), splits=("test",), n=1, size=(90, 90))
    square = tmp_path / "data/test/cat/0.png"  # the cat's test image, now square
    data = ImageFolderDataModule(
        str(root),
        crop=CropOptions(image_size=75),
        test_crops=144,
        loader=LoaderOptions(batch_size=1, num_workers=0),
    )
    data.setup("test")
    order = [data.test_dataset.path(i) for i in range(len(data.test_dataset))]

    counts = {}
    for index, batch in enumerate(data.test_dataloader()):
        views, labels = data.on_after_batch_transfer(batch, 0)
        assert isinstance(views, MultiCropViews) and labels.shape == (1,)
        views = list(views)
        assert len(views) == 144 and views[0].shape == (1, 3, 75, 75)
        counts[order[index]] = _distinct(views, 0)
    # the non-square dog image: every view differs; a square image's 3 squares coincide
    assert counts == {square: 48, root / "test/dog/0.png": 144}


class CountingNetwork(torch.nn.Module):
    """Records the batch size of every forward pass of the wrapped network."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network
        self.batches: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        self.batches.append(len(x))
        return self.network(x)


def test_test_step_averages_every_view_one_batch_at_a_time(tmp_path) -> None:
    root = write_tree(tmp_path / "data", splits=("train", "val", "test"), n=3, size=(100, 80))
    data = ImageFolderDataModule(
        str(root),
        crop=CropOptions(image_size=75),
        test_crops=12,
        loader=LoaderOptions(batch_size=4, num_workers=0),
    )
    module = InceptionClassifier(num_classes=2, model_kwargs=TINY)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    counting = CountingNetwork(module.model)

    data.setup("test")
    expected, labels = [], []
    module.eval()
    with torch.no_grad():
        for batch in data.test_dataloader():
            views, target = data.on_after_batch_transfer(batch, 0)
            expected.append(average_probs([counting], views))
            labels.append(target)
    accuracy = (torch.cat(expected).argmax(-1) == torch.cat(labels)).float().mean().item()
    assert counting.batches == [4] * 12 + [2] * 12  # 6 images: one view of a batch per pass

    (results,) = trainer.test(module, datamodule=data)
    assert results["test/acc1"] == pytest.approx(accuracy)
    assert set(results) == {"test/loss", "test/acc1", "test/acc5", "test/balanced_acc", "test/ece"}


def channel_means(view: Tensor) -> Tensor:
    return view.mean(dim=(2, 3)) * 10.0


def test_probabilities_average_over_views_and_networks() -> None:
    views = [torch.rand(2, 3, 8, 8) for _ in range(3)]
    expected_one = torch.stack([channel_means(v).softmax(-1) for v in views]).mean(0)
    torch.testing.assert_close(average_probs([channel_means], iter(views)), expected_one)

    def doubled(view: Tensor) -> Tensor:
        return 2.0 * channel_means(view)

    image = views[0]
    expected_two = torch.stack([channel_means(image).softmax(-1), doubled(image).softmax(-1)])
    two = average_probs([channel_means, doubled], [image])
    torch.testing.assert_close(two, expected_two.mean(0))
    torch.testing.assert_close(two.sum(-1), torch.ones(2))


def test_test_step_evaluates_crops_and_an_ensemble_of_checkpoints(tmp_path) -> None:
    member = create_model("inception_v3", num_classes=2, **TINY)
    torch.save(member.state_dict(), tmp_path / "member.pt")
    root = write_tree(tmp_path / "data", splits=("train", "val", "test"), n=2, size=(90, 96))
    data = ImageFolderDataModule(
        str(root),
        crop=CropOptions(image_size=75),
        test_crops=12,
        loader=LoaderOptions(batch_size=4, num_workers=0),
    )
    module = InceptionClassifier(
        num_classes=2, model_kwargs=TINY, ensemble_checkpoints=[str(tmp_path / "member.pt")]
    )
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)

    (results,) = trainer.test(module, datamodule=data)

    module.eval()
    (batch,) = list(data.test_dataloader())
    views, labels = data.on_after_batch_transfer(batch, 0)
    with torch.no_grad():
        probs = average_probs([module.model, member.eval()], views)
    assert results["test/acc1"] == pytest.approx((probs.argmax(-1) == labels).float().mean().item())
