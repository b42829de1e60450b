"""What tells a sibling variant or an accessory from the same product.

A catalog full of variants offers, for an item whose own record is missing, a
near-identical sibling: the same title one size, capacity, pack count or version
apart (16 GB vs 8 GB, 4-pack vs 2-pack, Carrara 5 vs Carrara 4), or the main
product for an accessory ("remote for BD-C6500" vs the BD-C6500 player). The
signals here look for exactly those differences in normalised texts (see
:func:`matching.normalise.normalise_text`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from matching.codes import UNITS

_QUANTITY_TOKEN = re.compile(rf"^(\d+)({UNITS})$")
_UNIT_TOKEN = re.compile(rf"^(?:{UNITS})$")
_DIMENSION_TOKEN = re.compile(r"^\d+(?:x\d+)+[a-z]{0,3}$")
# One-letter "units" (x, p, i, k, …) are too ambiguous as a separate word after a number.
_MIN_SEPARATE_UNIT = 2
# Units that name the same quantity.
_SAME_UNIT = {
    "pk": "pack",
    "pc": "pcs",
    "inches": "in",
    "inch": "in",
    "lbs": "lb",
    "watts": "w",
    "watt": "w",
    "volts": "v",
    "volt": "v",
    "ohms": "ohm",
    "yrs": "yr",
    "years": "yr",
    "year": "yr",
    "hrs": "hr",
    "megapixel": "mp",
    "mpx": "mp",
    "bits": "bit",
}

ACCESSORY_WORDS = frozenset(
    {
        "accessory",
        "accessories",
        "adapter",
        "adaptor",
        "bag",
        "battery",
        "bracket",
        "cable",
        "case",
        "charger",
        "compatible",
        "cover",
        "cradle",
        "dock",
        "fits",
        "holder",
        "kit",
        "mount",
        "pouch",
        "protector",
        "refill",
        "remanufactured",
        "remote",
        "replacement",
        "skin",
        "sleeve",
        "strap",
    }
)
"""Words that make a listing an accessory of, or a substitute for, a product it names."""


EDITION_WORDS = frozenset(
    {
        "academic",
        "basic",
        "business",
        "deluxe",
        "educational",
        "enterprise",
        "express",
        "home",
        "lite",
        "mini",
        "oem",
        "personal",
        "platinum",
        "premier",
        "premium",
        "professional",
        "pro",
        "refurbished",
        "standard",
        "student",
        "teacher",
        "trial",
        "ultimate",
        "upgrade",
    }
)
"""Words that name one edition of a product among several (Pro vs Standard, Upgrade)."""


def quantities_in_key(key: str) -> tuple[tuple[str, str], ...]:
    """The ``(value, unit)`` quantities of a normalised text, dimensions as unit ``"x"``.

    >>> quantities_in_key("sony 16 gb memory stick 4 pack 500gb 60x60 cm")
    (('16', 'gb'), ('4', 'pack'), ('500', 'gb'), ('60x60', 'x'))
    """
    found: list[tuple[str, str]] = []
    words = key.split()
    for position, word in enumerate(words):
        if not word[:1].isdigit():
            continue
        if word.isdigit():
            following = words[position + 1] if position + 1 < len(words) else ""
            if len(following) >= _MIN_SEPARATE_UNIT and _UNIT_TOKEN.match(following):
                found.append((word, _SAME_UNIT.get(following, following)))
            continue
        if _DIMENSION_TOKEN.match(word):
            found.append((word.rstrip("abcdefghijklmnopqrstuvwxyz"), "x"))
            continue
        quantity = _QUANTITY_TOKEN.match(word)
        if quantity:
            unit = quantity.group(2)
            found.append((quantity.group(1), _SAME_UNIT.get(unit, unit)))
    return tuple(found)


def quantity_clash(a: Iterable[tuple[str, str]], b: Iterable[tuple[str, str]]) -> bool:
    """Whether two texts give one unit only different values (16 GB vs 8 GB).

    >>> quantity_clash([("16", "gb")], [("8", "gb"), ("2", "pack")])
    True
    >>> quantity_clash([("16", "gb"), ("8", "gb")], [("8", "gb")])
    False
    >>> quantity_clash([("16", "gb")], [("16", "mb")])
    False
    """
    left: dict[str, set[str]] = {}
    for value, unit in a:
        left.setdefault(unit, set()).add(value)
    right: dict[str, set[str]] = {}
    for value, unit in b:
        right.setdefault(unit, set()).add(value)
    return any(unit in right and right[unit].isdisjoint(values) for unit, values in left.items())


def accessory_words(key: str) -> frozenset[str]:
    """The accessory markers among the words of a normalised text.

    >>> sorted(accessory_words("remote for bd c5500 bd c6500"))
    ['remote']
    """
    return ACCESSORY_WORDS.intersection(key.split())


def edition_words(key: str) -> frozenset[str]:
    """The edition words among the words of a normalised text.

    >>> sorted(edition_words("crystal reports xi professional edition"))
    ['professional']
    """
    return EDITION_WORDS.intersection(key.split())


def accessory_mismatch(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether one side is an accessory listing and the other is not (or of another kind).

    >>> accessory_mismatch(frozenset({"remote"}), frozenset())
    True
    >>> accessory_mismatch(frozenset({"case"}), frozenset({"case"}))
    False
    """
    return a != b
