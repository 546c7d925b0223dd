"""The error raised for unusable dataset folders and files."""


class DatasetError(ValueError):
    """A dataset folder or file that cannot be used; the message names it."""
