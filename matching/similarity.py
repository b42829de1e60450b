"""Pair scorers: similarity of two normalised texts and agreement of their codes and numbers.

Every scorer here returns a float in ``[0, 1]`` (code agreement in ``{-1, 0, 1}``),
scores identical inputs as a full match and is symmetric unless its docstring
says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from rapidfuzz import fuzz

# Codes shorter than this must be equal to agree; longer ones may contain each
# other (``kdl46xbr9`` vs ``kdl46xbr9b``, a colour suffix).
MIN_CONTAINED_CODE_LENGTH = 5
# Codes also agree when they share a prefix this long and covering this share of
# the shorter code (``mmv4205bt`` vs ``mmv4205baq``: regional suffixes).
MIN_SHARED_PREFIX = 6
MIN_SHARED_PREFIX_SHARE = 0.75


def token_set_similarity(a: str, b: str) -> float:
    """RapidFuzz ``token_set_ratio`` of two normalised texts, on a 0..1 scale.

    >>> token_set_similarity("sony dsc w120 black", "black sony dsc w120")
    1.0
    """
    return fuzz.token_set_ratio(a, b, processor=None) / 100.0


def token_sort_similarity(a: str, b: str) -> float:
    """RapidFuzz ``token_sort_ratio`` of two normalised texts, on a 0..1 scale.

    >>> round(token_sort_similarity("sony dsc w120", "sony dsc w130"), 2)
    0.92
    """
    return fuzz.token_sort_ratio(a, b, processor=None) / 100.0


def partial_similarity(a: str, b: str) -> float:
    """RapidFuzz ``partial_ratio`` (best-aligned substring) on a 0..1 scale.

    Symmetric for inputs of equal length; otherwise the shorter text is aligned
    inside the longer one, whichever argument it is.

    >>> partial_similarity("dsc w120", "sony cyber shot dsc w120 black")
    1.0
    """
    return fuzz.partial_ratio(a, b, processor=None) / 100.0


MIN_RELATED_PREFIX = 3
"""Leading characters two codes must share before their difference counts against a pair."""


def codes_agree(a: str, b: str) -> bool:
    """Whether two model codes name the same product.

    >>> codes_agree("kdl46xbr9", "kdl46xbr9b"), codes_agree("w120", "w130")
    (True, False)
    >>> codes_agree("mmv4205bt", "mmv4205baq"), codes_agree("dscw120", "dscw130")
    (True, False)
    """
    if a == b:
        return True
    shorter = min(len(a), len(b))
    if shorter < MIN_CONTAINED_CODE_LENGTH:
        return False
    if a in b or b in a:
        return True
    prefix = len(os.path.commonprefix([a, b]))
    return prefix >= MIN_SHARED_PREFIX and prefix >= MIN_SHARED_PREFIX_SHARE * shorter


def code_agreement(a: Collection[str], b: Collection[str]) -> int:
    """``1`` if the code sets share a code, ``-1`` if both have codes but none agree, else ``0``.

    >>> code_agreement(frozenset({"dscw120"}), frozenset({"dscw120"}))
    1
    >>> code_agreement(frozenset({"dscw120"}), frozenset({"dscw130"}))
    -1
    >>> code_agreement(frozenset(), frozenset({"dscw130"}))
    0
    """
    if not a or not b:
        return 0
    if not frozenset(a).isdisjoint(b):
        return 1
    if any(codes_agree(x, y) for x in a for y in b):
        return 1
    if any(_related_codes(x, y) for x in a for y in b):
        return -1
    return 0


def _related_codes(a: str, b: str) -> bool:
    """Whether two different codes look like one family's (a shared start), so that
    their difference means a different product; codes of unrelated numbering
    schemes (a retailer's SKU beside a maker's model) say nothing."""
    return len(os.path.commonprefix([a, b])) >= MIN_RELATED_PREFIX


def number_agreement(a: Collection[str], b: Collection[str]) -> float:
    """Overlap of number tokens: ``|a & b| / min(|a|, |b|)``, or ``1.0`` when either is empty.

    >>> number_agreement(frozenset({"500gb", "7200"}), frozenset({"500gb"}))
    1.0
    >>> number_agreement(frozenset({"500gb"}), frozenset({"250gb"}))
    0.0
    """
    if not a or not b:
        return 1.0
    return len(frozenset(a).intersection(b)) / min(len(a), len(b))
