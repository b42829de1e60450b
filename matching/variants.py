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

# a dimension (60x60, 60x60cm), two numbers before a unit (a range, 55-250mm, or a
# decimal, 3.6 cu ft, both split by normalising: "55 250mm", "3 6 cu"), or a number with
# its unit, attached or as the next word
_QUANTITY = re.compile(
    rf"\b(\d+(?:x\d+)+)[a-z]{{0,3}}\b|\b(\d+) (\d+)( ?)({UNITS})\b|\b(\d+)( ?)({UNITS})\b"
)
QUANTITY_TOLERANCE = 0.05
"""Values of one unit this close (relative) are one quantity, rounded (24.7 vs 25 cu ft)."""
_MAX_WHOLE_DIGITS = 3
_ORDINALS = frozenset({"st", "nd", "rd", "th"})
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
        "dlx",
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
        "prof",
        "professional",
        "pro",
        "refurbished",
        "standard",
        "std",
        "student",
        "teacher",
        "trial",
        "ultimate",
        "upg",
        "upgrade",
    }
)
"""Words that name one edition of a product among several (Pro vs Standard, Upgrade)."""

_SAME_EDITION = {
    "professional": "pro",
    "prof": "pro",
    "educational": "academic",
    "student": "academic",
    "upg": "upgrade",
    "dlx": "deluxe",
    "std": "standard",
}
"""Spellings of one edition: a Pro edition is a Professional one, a student edition an
academic one, and retail listings abbreviate (upg, dlx, std)."""


COLOUR_WORDS = frozenset(
    {
        "beige",
        "black",
        "blue",
        "bronze",
        "brown",
        "burgundy",
        "champagne",
        "charcoal",
        "cherry",
        "chrome",
        "copper",
        "cream",
        "gold",
        "graphite",
        "gray",
        "green",
        "grey",
        "ivory",
        "lavender",
        "lime",
        "maroon",
        "navy",
        "orange",
        "pink",
        "plum",
        "purple",
        "red",
        "silver",
        "teal",
        "titanium",
        "violet",
        "white",
        "yellow",
    }
)
"""Colour words: two listings of one model in different colours are different articles."""

_SAME_COLOUR = {"gray": "grey"}
"""Spellings of one colour."""


_YEAR = re.compile(r"\b(19[5-9]\d|20[0-4]\d)\b")
"""A year (1950-2049) as a word of its own: an edition's, a release's or a paper's."""


def years_in_key(key: str) -> frozenset[str]:
    """The years named in a normalised text.

    >>> sorted(years_in_key("math success deluxe 2007 for 1998 pcs 20071"))
    ['1998', '2007']
    """
    # every year has "19" or "20" in it: most texts are settled by the substring tests
    if not key or ("19" not in key and "20" not in key):
        return _NONE
    return frozenset(_YEAR.findall(key))


def _words_pattern(words: frozenset[str]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(sorted(words, key=len, reverse=True)) + r")\b")


_ACCESSORY = _words_pattern(ACCESSORY_WORDS)
_EDITION = _words_pattern(EDITION_WORDS)
_COLOUR = _words_pattern(COLOUR_WORDS)
_NONE: frozenset[str] = frozenset()
_MARKED_WORDS = ACCESSORY_WORDS | EDITION_WORDS | COLOUR_WORDS
_WORD_RUN = re.compile(r"\w+")
_HAS_DIGIT = re.compile(r"\d")


def quantities_in_key(key: str) -> tuple[tuple[str, str], ...]:
    """The ``(value, unit)`` quantities of a normalised text, dimensions as unit ``"x"``.

    >>> quantities_in_key("sony 16 gb memory stick 4 pack 500gb 60x60 cm")
    (('16', 'gb'), ('4', 'pack'), ('500', 'gb'), ('60x60', 'x'))
    >>> quantities_in_key("1 x phone line 46xbr9 1080p")
    (('1080', 'p'),)
    >>> quantities_in_key("canon ef 75 300mm lens 100 240v")
    (('75-300', 'mm'), ('100-240', 'v'))
    >>> quantities_in_key("lg 3 6 cu ft washer 14 7 megapixel 2 4ghz")
    (('3.6', 'cu'), ('14.7', 'mp'), ('2.4', 'ghz'))
    >>> quantities_in_key("windows 7 64 bit 123 3rd street")
    (('64', 'bit'), ('3', 'rd'))
    """
    found: list[tuple[str, str]] = []
    for match in _QUANTITY.finditer(key):
        dimension, first, second, pair_space, pair_unit, value, space, unit = match.groups()
        if dimension is not None:
            found.append((dimension, "x"))
        elif first is not None:
            if pair_space and len(pair_unit) < _MIN_SEPARATE_UNIT:
                continue
            same_unit = _SAME_UNIT.get(pair_unit, pair_unit)
            if not pair_space and min(len(first), len(second)) >= 2 and int(first) < int(second):
                found.append((f"{first}-{second}", same_unit))  # a range runs upwards
            elif (
                len(second) == 1 and len(first) <= _MAX_WHOLE_DIGITS and pair_unit not in _ORDINALS
            ):
                # 3.6 cu; not "win 7 64 bit", nor a street number before "3rd"
                found.append((f"{first}.{second}", same_unit))
            else:
                found.append((second, same_unit))
        elif not space or len(unit) >= _MIN_SEPARATE_UNIT:
            found.append((value, _SAME_UNIT.get(unit, unit)))
    return tuple(found)


def quantity_clash(a: Iterable[tuple[str, str]], b: Iterable[tuple[str, str]]) -> bool:
    """Whether two texts give one unit only different values (16 GB vs 8 GB).

    >>> quantity_clash([("16", "gb")], [("8", "gb"), ("2", "pack")])
    True
    >>> quantity_clash([("16", "gb"), ("8", "gb")], [("8", "gb")])
    False
    >>> quantity_clash([("16", "gb")], [("16", "mb")])
    False
    >>> quantity_clash([("55-250", "mm")], [("70-300", "mm")]), quantity_clash([("70-300", "mm")], [("300", "mm")])
    (True, False)
    >>> quantity_clash([("24.7", "cu")], [("25", "cu")]), quantity_clash([("110", "gb")], [("120", "gb")])
    (False, True)
    """
    left: dict[str, set[str]] = {}
    for value, unit in a:
        left.setdefault(unit, set()).add(value)
    right: dict[str, set[str]] = {}
    for value, unit in b:
        right.setdefault(unit, set()).add(value)
    return any(
        unit in right and not any(_same_quantity(x, y) for x in values for y in right[unit])
        for unit, values in left.items()
    )


def _same_quantity(a: str, b: str) -> bool:
    """Whether two values of one unit may name the same thing: equal, or one a range
    (``55-250``) and the other one of its ends (a listing may give only the long end)."""
    if a == b:
        return True
    if "x" in a or "x" in b:  # dimensions: equal or not
        return False
    if ("-" in a) != ("-" in b):
        span, single = (a, b) if "-" in a else (b, a)
        return any(_close(single, end) for end in span.split("-"))
    return "-" not in a and _close(a, b)


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    return abs(x - y) <= QUANTITY_TOLERANCE * max(x, y)


def accessory_words(key: str) -> frozenset[str]:
    """The accessory markers among the words of a normalised text.

    >>> sorted(accessory_words("remote for bd c5500 bd c6500"))
    ['remote']
    """
    return frozenset(_ACCESSORY.findall(key)) if key else _NONE


def edition_words(key: str) -> frozenset[str]:
    """The edition words among the words of a normalised text.

    >>> sorted(edition_words("crystal reports xi professional edition"))
    ['professional']
    """
    return frozenset(_EDITION.findall(key)) if key else _NONE


Marks = tuple[
    tuple[tuple[str, str], ...], frozenset[str], frozenset[str], frozenset[str], frozenset[str]
]
"""A text's quantities, accessory, edition and colour words, and years (see :func:`marks`)."""

NO_MARKS: Marks = ((), _NONE, _NONE, _NONE, _NONE)


def marks(key: str) -> Marks:
    """``(quantities, accessory, edition and colour words, years)`` of a normalised text;
    one shared :data:`NO_MARKS` when it has none.

    >>> marks("acme remote for tv 2 pack pro black 2007")
    ((('2', 'pack'),), frozenset({'remote'}), frozenset({'pro'}), frozenset({'black'}), frozenset({'2007'}))
    >>> marks("acme tv") is NO_MARKS
    True
    """
    if not key:
        return NO_MARKS
    # One pass for the three word lists: a whole-word match is a run of word characters,
    # so the runs that are marked words are what each list's pattern would find.
    named = _MARKED_WORDS.intersection(_WORD_RUN.findall(key))
    if _HAS_DIGIT.search(key):
        quantities, years = quantities_in_key(key), years_in_key(key)
    else:  # quantities and years need a digit
        quantities, years = (), _NONE
    if not (named or quantities or years):
        return NO_MARKS
    if named:
        found = (
            quantities,
            ACCESSORY_WORDS & named,
            _folded(EDITION_WORDS & named, _SAME_EDITION),
            _folded(COLOUR_WORDS & named, _SAME_COLOUR),
            years,
        )
    else:
        found = (quantities, _NONE, _NONE, _NONE, years)
    return NO_MARKS if found == NO_MARKS else found


def _folded(named: frozenset[str], spellings: dict[str, str]) -> frozenset[str]:
    """``named`` with each word in one spelling of its meaning."""
    if not named.intersection(spellings):
        return named
    return frozenset(spellings.get(word, word) for word in named)


def variant_signals(item: Marks, record: Marks) -> tuple[int, int, int, int, int]:
    """``(quantity clash, accessory mismatch, edition mismatch, colour clash, year clash)``
    of two texts' marks; colours and years clash only when both name some and none is
    shared (a listing that names no colour may be any).

    >>> variant_signals(marks("ssd 16 gb black"), marks("ssd 8 gb case"))
    (1, 1, 0, 0, 0)
    >>> variant_signals(marks("s550 plum"), marks("s550 cool blue"))
    (0, 0, 0, 1, 0)
    >>> variant_signals(marks("ipod space gray"), marks("ipod space grey"))
    (0, 0, 0, 0, 0)
    >>> variant_signals(marks("flash pro cs3 upg"), marks("flash professional cs3 upgrade"))
    (0, 0, 0, 0, 0)
    >>> variant_signals(marks("math success 2007"), marks("math success 2008"))
    (0, 0, 0, 0, 1)
    """
    if item is NO_MARKS and record is NO_MARKS:
        return 0, 0, 0, 0, 0
    quantities = bool(item[0] and record[0] and quantity_clash(item[0], record[0]))
    colours = bool(item[3] and record[3] and item[3].isdisjoint(record[3]))
    years = bool(item[4] and record[4] and item[4].isdisjoint(record[4]))
    return (
        int(quantities),
        int(item[1] != record[1]),
        int(item[2] != record[2]),
        int(colours),
        int(years),
    )
