"""Class-per-folder images: decoding, datasets, the training and predict datamodules, and the
report's evaluation set."""
