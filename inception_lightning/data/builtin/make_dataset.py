"""`write_dataset`: the built-in dataset as an image folder with a boxes file.

Layout under `out`::

    train/<class>/<index>.png    val/<class>/<index>.png     RGB images
    masks/train/<class>/<index>.png, masks/val/...          the objects' masks (1-bit PNG)
    boxes.json                                              boxes and mask paths, see data.boxes

`ImageFolderDataModule(root=out, boxes_file=out/boxes.json)` reads it back; the same file format
annotates a user's own images for scored attribution reports.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from inception_lightning.console import track
from inception_lightning.data.boxes import BOXES_FILE, Annotation, write_boxes
from inception_lightning.data.builtin.synthetic import SyntheticDataset


def write_dataset(
    out: str | Path,
    num_classes: int = 8,
    image_size: int = 79,
    num_samples: int = 4000,
    difficulty: float = 0.25,
    seed: int = 0,
    val_fraction: float = 0.1,
    class_counts: list[int] | None = None,
    long_tail: tuple[int, int] | None = None,
) -> Path:
    """Write the built-in shapes dataset as train/ and val/ class folders plus boxes.json.

    The images are those `SyntheticDataModule` renders with the same arguments; the boxes file
    (object boxes and masks, see `data.boxes`) scores attribution reports. Returns `out`.
    With `class_counts` or `long_tail` the training images are imbalanced as asked, while
    `val/` stays balanced, so that its accuracy weighs every class alike.

    Args:
        out: destination folder, created if missing.
        num_classes: shape classes, 2 to 10.
        image_size: side of the square images.
        num_samples: train and val images together (with per-class counts: the val images are
            still `val_fraction` of it).
        difficulty: 0 to 1.
        seed: the same seed writes the same images.
        val_fraction: share of `num_samples` in `val/`.
        class_counts: training images of each class, in the sorted order of the class names.
        long_tail: `[head, tail]`: training images falling exponentially from `head` for the
            first class to `tail` for the last (`long_tail_counts`), e.g. `[200, 20]`.
    """
    out = Path(out)
    if class_counts is not None and long_tail is not None:
        raise ValueError("give class_counts or long_tail, not both")
    if long_tail is not None:
        class_counts = long_tail_counts(*long_tail, num_classes)
    num_val = max(1, round(num_samples * val_fraction))
    num_train = num_samples - num_val if class_counts is None else sum(class_counts)
    annotations: dict[str, Annotation] = {}
    for split, count in (("train", num_train), ("val", num_val)):
        counts = class_counts if split == "train" else None
        dataset = SyntheticDataset(
            split, count, num_classes, image_size, difficulty, seed, class_counts=counts
        )
        for index in track(range(count), f"writing {split} images", unit="images"):
            name = f"{split}/{dataset.classes[dataset.labels[index]]}/{index:06d}.png"
            for folder in (out, out / "masks"):
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(dataset.images[index].permute(1, 2, 0).numpy()).save(out / name)
            mask = Image.fromarray(dataset.masks[index].numpy())
            mask.save(out / "masks" / name)
            annotations[name] = Annotation((mask.getbbox(),), f"masks/{name}")
    write_boxes(out / BOXES_FILE, annotations)
    return out


def long_tail_counts(head: int, tail: int, num_classes: int) -> list[int]:
    """Per-class counts falling exponentially from `head` to `tail` over `num_classes` classes.

    Class i gets `round(head * (tail / head) ** (i / (num_classes - 1)))`: the long-tailed
    profile of CIFAR-10-LT (Cui et al., "Class-Balanced Loss Based on Effective Number of
    Samples", CVPR 2019), with imbalance ratio `head / tail`.
    """
    if not 1 <= tail <= head:
        raise ValueError(f"long_tail needs head >= tail >= 1, got [{head}, {tail}]")
    if num_classes < 2:
        raise ValueError(f"long_tail needs at least 2 classes, got {num_classes}")
    return [round(head * (tail / head) ** (i / (num_classes - 1))) for i in range(num_classes)]
