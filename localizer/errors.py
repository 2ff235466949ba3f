"""The one exception family for input that cannot be used: a file or a value, with a reason and a detail.

Everything a user can get wrong (a broken photo, a bad annotation, an unknown dataset layout, a
misspelt parameter, too few photos, a foreign checkpoint) raises a :class:`DataError` subclass. The
command line prints its message on one line and exits with code 2; any other exception is a bug and
shows its traceback.
"""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A file or a value that cannot be used.

    Attributes:
        reason: a short code for tables and reports (e.g. ``corrupt``, ``no-box``, ``bad-value``).
        detail: one sentence for people.
        path: the file concerned, or None.

    The message is ``"PATH: REASON: DETAIL"`` (without the parts that are empty).
    """

    def __init__(self, reason: str, detail: str, path: Path | str | None = None):
        self.reason = reason
        self.detail = detail
        self.path = None if path is None else str(path)
        super().__init__(": ".join(part for part in (self.path, reason, detail) if part))


class ConfigError(DataError):
    """A parameter or command-line value that cannot be used; the message is the detail alone
    (e.g. ``epochs='two': expected a whole number >= 1``)."""

    def __init__(self, detail: str):
        super().__init__("", detail)
        self.reason = "bad-value"


def first_line(exc: BaseException, limit: int) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters (``""`` for an empty message): what a
    one-line refusal quotes of a library's error, whose further lines are advice or a traceback."""
    return (str(exc).strip().splitlines() or [""])[0][:limit]
