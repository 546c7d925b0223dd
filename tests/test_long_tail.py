"""Imbalanced folders: make-dataset's per-class counts, the class-balanced sampler, the counts
reported at setup."""

from __future__ import annotations

from pathlib import Path

import pytest

from inception_lightning.cli import main
from inception_lightning.data import SyntheticDataset
from inception_lightning.data.builtin.make_dataset import long_tail_counts


def _counts(folder: Path) -> dict[str, int]:
    return {d.name: len(list(d.glob("*.png"))) for d in sorted(folder.iterdir())}


def test_long_tail_counts_fall_exponentially() -> None:
    # 200 * 0.1 ** (i / 9), rounded: CIFAR-10-LT's profile with imbalance ratio 10
    assert long_tail_counts(200, 20, 10) == [200, 155, 120, 93, 72, 56, 43, 33, 26, 20]
    assert long_tail_counts(12, 3, 3) == [12, 6, 3]


def test_make_dataset_writes_a_long_tail_and_a_balanced_val(tmp_path: Path) -> None:
    out = tmp_path / "lt"
    main(["make-dataset", "--out", str(out), "--num_classes", "3", "--num_samples", "30",
          "--image_size", "32", "--long_tail", "[12, 3]"])  # fmt: skip
    assert _counts(out / "train") == {"circle": 12, "square": 6, "triangle": 3}
    assert _counts(out / "val") == {"circle": 1, "square": 1, "triangle": 1}
    # the images are those of the dataset drawn with the same counts, class after class
    drawn = SyntheticDataset("train", 0, 3, 32, class_counts=[12, 6, 3])
    assert drawn.labels == [0] * 12 + [1] * 6 + [2] * 3


def test_make_dataset_takes_explicit_class_counts(tmp_path: Path) -> None:
    out = tmp_path / "counts"
    main(["make-dataset", "--out", str(out), "--num_classes", "2", "--num_samples", "8",
          "--image_size", "32", "--class_counts", "[1, 4]", "--val_fraction", "0.25"])  # fmt: skip
    assert _counts(out / "train") == {"circle": 1, "square": 4}
    assert _counts(out / "val") == {"circle": 1, "square": 1}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--long_tail", "[3, 12]"], "long_tail needs head >= tail >= 1, got [3, 12]"),
        (["--class_counts", "[4]"], "class_counts needs one count of at least 1 for each of"),
        (["--class_counts", "[4, 4]", "--long_tail", "[4, 2]"], "not both"),
    ],
)
def test_bad_counts_end_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["make-dataset", "--out", str(tmp_path / "x"), "--num_classes", "2", *flags])
    assert message in str(exit_info.value.code)
    assert "Traceback" not in capsys.readouterr().err
