"""Streaming data with LitData (the `litdata` extra): `convert` writes chunks, and
`StreamingImageDataModule` trains from them, local or in object storage."""

import os

# LitData asks PyPI for a newer release of itself whenever a dataset is made (a 30 s timeout
# offline); this package makes no network call of its own accord.
os.environ.setdefault("LITDATA_DISABLE_VERSION_CHECK", "1")

try:
    import litdata  # noqa: F401
except ImportError as error:
    raise ImportError(
        "streaming data needs LitData: pip install 'inception-lightning[litdata]'"
    ) from error
