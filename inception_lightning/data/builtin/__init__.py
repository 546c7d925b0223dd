"""The built-in shapes dataset: drawing, the dataset, its datamodule, and make-dataset."""
