"""Which files of a folder are candidate images: one rule for fit, predict, report and scan.

A file is a candidate when no part of its path under the folder is hidden (starts with ".":
`.DS_Store`, `.git/`, the scan cache) and its name ends with one of torchvision's `ImageFolder`
extensions, in any case (`IMAGE_EXTENSIONS`). Other files (annotations, `boxes.json`,
READMEs, CSVs) are not looked at. The rule goes by name only: a candidate is then checked
(`scan.check_image`), so a `.jpg` that is not an image is a bad file, never silently passed over.

A folder predicted from its root may hold its own annotations: the mask images that the
folder's boxes file (`ROOT/boxes.json`, make-dataset's output) names are not candidates either
(`annotation_masks`).
"""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from inception_lightning.data.boxes import BOXES_FILE, read_boxes

# torchvision's ImageFolder list, so a folder holds the same images here as there:
# .jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp
IMAGE_EXTENSIONS: tuple[str, ...] = tuple(IMG_EXTENSIONS)


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is hidden (starts with ".")."""
    return name.startswith(".")


def is_candidate(name: str) -> bool:
    """Whether a file of this name is a candidate image: not hidden, with an image extension."""
    return not is_hidden(name) and name.lower().endswith(IMAGE_EXTENSIONS)


def annotation_masks(root: Path) -> set[Path]:
    """The mask files that `root`'s boxes file (`root/boxes.json`) names; empty without one."""
    boxes = root / BOXES_FILE
    if not boxes.is_file():
        return set()
    return {root / a.mask for a in read_boxes(boxes).values() if a.mask is not None}
