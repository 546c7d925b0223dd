"""Training augmentation from torchvision v2 on the uint8 crops: policies and random erasing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from inception_lightning.cli import main
from inception_lightning.data import ImageFolderDataModule, write_dataset
from inception_lightning.data.data_options import AugmentOptions
from inception_lightning.data.transforms.policies import policy_transforms

MEAN = (0.5, 0.5, 0.5)


@pytest.mark.parametrize("policy", ["randaugment", "trivialaugment", "autoaugment"])
def test_policies_keep_uint8_images_of_the_same_size(policy: str) -> None:
    (transform,) = policy_transforms(AugmentOptions(policy=policy), MEAN)
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 47, 47), dtype=torch.uint8)
    changed = [transform(image) for _ in range(8)]
    assert all(out.dtype == torch.uint8 and out.shape == (3, 47, 47) for out in changed)
    assert any(not torch.equal(out, image) for out in changed)


def test_erasing_fills_a_rectangle_with_the_mean_which_normalises_to_zero() -> None:
    (erase,) = policy_transforms(AugmentOptions(erasing=1.0), MEAN)
    image = torch.zeros(3, 40, 40, dtype=torch.uint8)
    torch.manual_seed(0)
    erased = erase(image)
    rows, cols = torch.nonzero(erased[0]).unbind(1)
    box = erased[:, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert (box == 128).all() and (erased == 128).sum() == box.numel()  # one filled rectangle
    assert 0.02 * 1600 <= box[0].numel() <= 0.33 * 1600  # torchvision's scale range
    assert policy_transforms(AugmentOptions(), MEAN) == []


def test_folder_training_transform_is_crop_flip_policy_erasing(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "shapes", num_classes=2, image_size=32, num_samples=8)
    augment = AugmentOptions(policy="randaugment", num_ops=3, magnitude=5, erasing=0.25)
    dm = ImageFolderDataModule(str(root), crop={"image_size": 32, "crop_pct": 1.0}, augment=augment)
    steps = dm.train_transform.transforms
    assert [type(t).__name__ for t in steps] == ["Compose", "RandAugment", "RandomErasing"]
    assert (steps[1].num_ops, steps[1].magnitude, steps[2].p) == (3, 5, 0.25)
    assert dm.hparams["augment"]["policy"] == "randaugment"  # saved as plain values
    dm.setup("fit")
    image, _ = dm.train_dataset[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    assert isinstance(dm.eval_transform, v2.Compose) and len(dm.eval_transform.transforms) == 2


def test_a_bad_policy_ends_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--data", "inception_lightning.data.ImageFolderDataModule",
              "--data.init_args.root", ".", "--data.init_args.augment.policy", "randaugmnt",
              "--print_config"])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "randaugmnt" in err and "trivialaugment" in err
