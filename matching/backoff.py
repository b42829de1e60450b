"""Retry timing shared by the network-facing stages: ``Retry-After`` parsing and backoff.

>>> parse_retry_after({"retry-after": "7"})
7.0
>>> 0.0 <= backoff_delay(3, base=0.5, cap=30.0) <= 2.0
True
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

_DEFAULT_RNG = random.Random()


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait as the server asks in ``retry-after-ms`` or ``retry-after``, else ``None``.

    ``retry-after`` may be a number of seconds or an HTTP date. Negative or
    unparsable values give ``None``; a date in the past gives ``0.0``.

    >>> parse_retry_after({"retry-after-ms": "1500"})
    1.5
    >>> parse_retry_after({"retry-after": "soon"}) is None
    True
    """
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        return None
    value = headers.get("retry-after")
    if not value:
        return None
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, float(email.utils.mktime_tz(parsed) - time.time()))


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """A "full jitter" delay before retry number ``attempt`` (1 for the first retry).

    Uniform on ``[0, min(cap, base * 2 ** (attempt - 1))]``, so concurrent callers
    that failed together spread out instead of retrying in lockstep.
    """
    ceiling = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 60))
    return (rng or _DEFAULT_RNG).uniform(0.0, ceiling)
