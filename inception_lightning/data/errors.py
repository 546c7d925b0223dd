"""The error raised for unusable dataset folders and files."""


class DatasetError(ValueError):
    """A dataset folder or file that cannot be used; the message names it."""


def printable(value: object) -> str:
    """`str(value)` with control characters escaped (`\\n`, `\\x1b`, ...).

    File and folder names come from data: escaped, a crafted name cannot forge extra lines in a
    log or a bad-files list, or send terminal escape sequences.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
