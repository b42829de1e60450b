"""Pair scorers: similarity of two normalised texts and agreement of their codes and numbers.

Every scorer here returns a float in ``[0, 1]`` (code agreement in ``{-1, 0, 1}``),
scores identical inputs as a full match and is symmetric unless its docstring
says otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection

from rapidfuzz import fuzz

# Codes shorter than this must be equal to agree; longer ones may differ by letters
# around a shared core (``kdl46xbr9`` vs ``kdl46xbr9b``: a colour suffix).
MIN_CONTAINED_CODE_LENGTH = 5
_DIGIT = re.compile(r"\d")


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

    They agree when equal, or when one is the other with letters added around it
    (colour, region or kit suffixes and prefixes). Two codes that share a start and
    then end in other letters (``dvpns57ps`` vs ``dvpns57pb``) are usually one model
    in two colours or regions, which a catalog full of variants lists apart: they do
    not agree (nor clash, see :func:`code_agreement`). A digit that differs always
    means another model (``kxtg9333t`` vs ``kxtg9332s``).

    >>> codes_agree("kdl46xbr9", "kdl46xbr9b"), codes_agree("w120", "w130")
    (True, False)
    >>> codes_agree("dvpns57ps", "dvpns57pb"), codes_agree("dscw120", "dscw130")
    (False, False)
    >>> codes_agree("vgnz591ub", "z591ub"), codes_agree("kxtg9333t", "kxtg9332s")
    (True, False)
    >>> codes_agree("hdrsr11", "hdrsr1"), codes_agree("th46pz80u", "th46pz850u")
    (False, False)
    """
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    if len(shorter) < MIN_CONTAINED_CODE_LENGTH:
        return False
    at = longer.find(shorter)
    return at >= 0 and not _DIGIT.search(longer[:at] + longer[at + len(shorter) :])


def code_agreement(a: Collection[str], b: Collection[str]) -> int:
    """``1`` if the code sets share a code, ``-1`` if both have codes but none agree, else ``0``.

    >>> code_agreement(frozenset({"dscw120"}), frozenset({"dscw120"}))
    1
    >>> code_agreement(frozenset({"dscw120"}), frozenset({"dscw130"}))
    -1
    >>> code_agreement(frozenset(), frozenset({"dscw130"}))
    0
    >>> code_agreement(frozenset({"v6cd", "42050142"}), frozenset({"v6cd", "42050106"}))
    0
    >>> code_agreement(frozenset({"dvpns57p", "dvpns57ps"}), frozenset({"dvpns57p", "dvpns57pb"}))
    0
    >>> code_agreement(frozenset({"s320", "3880001"}), frozenset({"s320", "3780001"}))
    0
    """
    if not a or not b:
        return 0
    a, b = frozenset(a), frozenset(b)
    if not a.isdisjoint(b):
        # a shared code beside another that differs within its family (a version code
        # shared, the part numbers 42050142 and 42050106 not), or beside two variants of
        # one model (dvpns57p shared, dvpns57ps and dvpns57pb not), says nothing either way
        differing = [(x, y) for x in a - b for y in b - a]
        return 0 if any(_variants(x, y) for x, y in differing) else 1
    if any(codes_agree(x, y) for x in a for y in b):
        return 1
    if any(_variants(x, y) for x in a for y in b):
        return -1
    return 0


def _variants(a: str, b: str) -> bool:
    """Whether two different codes name two products of one family, or two variants of one
    model (:func:`_related_codes`, :func:`_suffix_variants`)."""
    return _related_codes(a, b) or _suffix_variants(a, b)


MIN_VARIANT_CORE = 4
"""Leading characters (a digit among them) two codes must share before other letter
suffixes make them two variants of one model."""


def _suffix_variants(a: str, b: str) -> bool:
    """Whether two codes are one model's core with two other letter suffixes
    (``dvpns57ps`` vs ``dvpns57pb``, ``nsaw390wh`` vs ``nsaw390bl``): one model in two
    colours or regions, two articles. A suffix that abbreviates the other (``bk`` and
    ``blk``, ``wh`` and ``whi``) names the same variant.

    >>> _suffix_variants("dvpns57ps", "dvpns57pb"), _suffix_variants("ldf6920ww", "ldf6920bb")
    (True, True)
    >>> _suffix_variants("mdrex55bk", "mdrex55blk"), _suffix_variants("ip47", "ip47br")
    (False, False)
    """
    prefix = len(os.path.commonprefix([a, b]))
    core, rest_a, rest_b = a[:prefix], a[prefix:], b[prefix:]
    if len(core) < MIN_VARIANT_CORE or not _DIGIT.search(core):
        return False
    if not (rest_a.isalpha() and rest_b.isalpha()):
        return False
    # the shared start may have eaten the suffixes' common first letter (bk / blk)
    head = core[-1] if core[-1].isalpha() else ""
    short, long = sorted((head + rest_a, head + rest_b), key=len)
    return not _abbreviates(short, long)


def _abbreviates(short: str, long: str) -> bool:
    """Whether ``short`` is ``long`` with letters left out, its first letter kept."""
    if not short or short[0] != long[0]:
        return not short
    letters = iter(long)
    return all(c in letters for c in short)


def _related_codes(a: str, b: str) -> bool:
    """Whether two different codes look like one family's (a shared start) with other
    digits, so that their difference means a different product; codes of unrelated
    numbering schemes (a retailer's SKU beside a maker's model) say nothing, and
    neither do codes that differ by letters only (``ip47`` vs ``ip47br``: a colour or
    kit suffix on a code too short to call the same model)."""
    prefix = len(os.path.commonprefix([a, b]))
    if not _DIGIT.search(a[prefix:] + b[prefix:]):
        return False
    if prefix >= MIN_RELATED_PREFIX:
        return True
    if _one_digit_apart(a, b):
        return True
    # one series' letters, then other numbers (MX850 vs MX310)
    return (
        prefix == MIN_RELATED_PREFIX - 1
        and a[:prefix].isalpha()
        and a[prefix : prefix + 1].isdigit()
        and b[prefix : prefix + 1].isdigit()
    )


MIN_ONE_DIGIT_APART_LENGTH = 5
"""Length from which two codes one digit apart (``3880001`` / ``3780001``) are one family's."""


def _one_digit_apart(a: str, b: str) -> bool:
    """Whether two codes of the same length differ in exactly one place, a digit for a
    digit: one numbering scheme's neighbours, however early the difference
    (``3880001`` / ``3780001``: a grill's natural-gas and propane models).

    >>> _one_digit_apart("3880001", "3780001"), _one_digit_apart("3880001", "3780002")
    (True, False)
    >>> _one_digit_apart("a1234", "b1234"), _one_digit_apart("1234", "1334")
    (False, False)
    """
    if len(a) != len(b) or len(a) < MIN_ONE_DIGIT_APART_LENGTH:
        return False
    differing = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return len(differing) == 1 and differing[0][0].isdigit() and differing[0][1].isdigit()


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
