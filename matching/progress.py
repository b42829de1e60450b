"""Progress reports of long builds (a catalog index, a job's peers).

A build takes an optional ``progress`` callable and calls it from time to time with the
share of its work done, 0..1, never decreasing, 1.0 last. The callable runs in the
building thread; an exception it raises stops the build (a caller that no longer needs
the result may abort that way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

Progress = Callable[[float], None]
"""Called with the share of a build done so far (0..1)."""

PROGRESS_BLOCK = 8192
"""Records between two progress reports of a per-record step."""

T = TypeVar("T")


def no_progress(_done: float) -> None:
    """A :data:`Progress` that ignores its reports."""


def scaled(progress: Progress, start: float, stop: float) -> Progress:
    """``progress`` for a part of a build that covers ``start``..``stop`` of the whole.

    >>> seen = []
    >>> scaled(seen.append, 0.5, 1.0)(0.5)
    >>> seen
    [0.75]
    """
    return lambda done: progress(start + (stop - start) * done)


def map_reporting(fn: Callable[[str], T], values: Sequence[str], progress: Progress) -> list[T]:
    """``[fn(v) for v in values]``, reporting the share done every :data:`PROGRESS_BLOCK`.

    >>> seen = []
    >>> map_reporting(str.upper, ["a", "b"], seen.append), seen
    (['A', 'B'], [1.0])
    """
    out: list[T] = []
    n = max(1, len(values))
    for block in range(0, len(values), PROGRESS_BLOCK):
        out.extend(map(fn, values[block : block + PROGRESS_BLOCK]))
        progress(min(1.0, (block + PROGRESS_BLOCK) / n))
    return out
