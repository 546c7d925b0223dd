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
) -> Path:
    """Write the built-in shapes dataset as train/ and val/ class folders plus boxes.json.

    The images are those `SyntheticDataModule` renders with the same arguments; the boxes file
    (object boxes and masks, see `data.boxes`) scores attribution reports. Returns `out`.

    Args:
        out: destination folder, created if missing.
        num_classes: shape classes, 2 to 10.
        image_size: side of the square images.
        num_samples: train and val images together.
        difficulty: 0 to 1.
        seed: the same seed writes the same images.
        val_fraction: share of `num_samples` in `val/`.
    """
    out = Path(out)
    num_val = max(1, round(num_samples * val_fraction))
    annotations: dict[str, Annotation] = {}
    for split, count in (("train", num_samples - num_val), ("val", num_val)):
        dataset = SyntheticDataset(split, count, num_classes, image_size, difficulty, seed)
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
