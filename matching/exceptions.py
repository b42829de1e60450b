"""Errors raised by the matching library.

Every error derives from :class:`MatchingError`, so a caller can catch the whole
family with one ``except`` clause.
"""

from __future__ import annotations


class MatchingError(Exception):
    """The matching library could not complete the request."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class InvalidThresholdError(MatchingError, ValueError):
    """The threshold must be a number between 0 and 1."""


class InvalidArgumentError(MatchingError, ValueError):
    """An argument to a matching function is out of range."""


class DuplicateCatalogIdError(MatchingError, ValueError):
    """Catalog ids must be unique within one index."""
