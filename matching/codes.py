"""Model codes and numbers: the tokens that tell near-identical products apart.

A *model code* is an alphanumeric token that mixes letters and digits and is at
least four characters long once the joiners ``-``, ``/`` and ``.`` are removed
(``DSC-W120`` -> ``dscw120``), or a run of at least six digits (part numbers and
UPCs such as ``010-10609-00``). Quantities with a unit (``500GB``, ``1080p``,
``2.4GHz``), counted words (``2-Line``, ``8-Port``) and dimensions
(``1920x1080``) are not codes.
"""

from __future__ import annotations

import functools
import itertools
import re

from matching.normalise import fold_text, normalise_text

MIN_CODE_LENGTH = 4
MIN_DIGIT_CODE_LENGTH = 6
# Candidate tokens repeat across titles (brands, series, units): their verdicts are
# cached, bounded so that a stream of unique part numbers cannot grow memory.
CODE_TOKEN_CACHE_SIZE = 1 << 16

# Runs of letters, digits and code joiners (no underscore): the code candidates.
_CODE_TOKEN = re.compile(r"(?:[^\W_]|[\-/.])+")
_JOINERS = re.compile(r"[\-/.]+")
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[^\W\d_]")
UNITS = (
    "b|kb|mb|gb|tb|pb|kbps|mbps|gbps|bit|bits|hz|khz|mhz|ghz|mp|mpx|megapixel|"
    "mm|cm|m|km|in|inch|inches|ft|yd|lb|lbs|oz|kg|g|mg|ml|l|gal|qt|"
    "w|kw|watt|watts|v|volt|volts|a|mah|ah|wh|ohm|ohms|db|dbi|"
    "p|i|k|x|fps|rpm|ppm|dpi|ms|s|sec|min|hr|hrs|h|yr|yrs|year|years|"
    "pc|pcs|pk|pack|ct|ch|th|st|nd|rd|d|btu|lumens|lm|cu|sq"
)
"""The units a quantity may carry (``500gb``, ``4 pack``), as a regular-expression alternation."""
_QUANTITY = re.compile(rf"^\d+(?:{UNITS})$")
_DIMENSION = re.compile(r"^\d+(?:x\d+)+(?:[a-z]{0,3})$")
# a count and the word it counts (2-Line, 8-Port, 100-Pack); a longer number before
# letters is a code (4052-TRPSEB)
_COUNTED_WORD = re.compile(r"^\d{1,3}[\-/.][^\W\d_]+$")
# dates (2006-05-12, 12/05/2006, 5.12.06) and ZIP+4 postcodes name no product
_DATE = re.compile(
    r"^(?:\d{4}[\-/.]\d{1,2}[\-/.]\d{1,2}|\d{1,2}[\-/.]\d{1,2}[\-/.](?:\d{2}|\d{4}))$"
)
_ZIP4 = re.compile(r"^\d{5}-\d{4}$")
# a lens's f-number or aperture range (f/2.8, f/4-5.6, f3.5/5.6) is an optical figure that
# many lenses share, not a model code; a part number after an "f" (F89-01570) has neither
# a "/" nor a decimal point
_APERTURE = re.compile(r"^f(?=.*[/.])/?\d{1,2}(?:\.\d)?(?:[-/]\d{1,2}(?:\.\d)?)*-?$")


def is_model_code(token: str) -> bool:
    """Whether a joiner-free, folded token looks like a model code.

    >>> is_model_code("dscw120"), is_model_code("500gb"), is_model_code("1080p")
    (True, False, False)
    >>> is_model_code("1920x1080"), is_model_code("abc"), is_model_code("2727b001")
    (False, False, True)
    >>> is_model_code("2007"), is_model_code("0101060900")
    (False, True)
    """
    if len(token) < MIN_CODE_LENGTH:
        return False
    if token.isdigit():
        return len(token) >= MIN_DIGIT_CODE_LENGTH
    if not (_HAS_DIGIT.search(token) and _HAS_LETTER.search(token)):
        return False
    return not (_QUANTITY.match(token) or _DIMENSION.match(token))


def extract_codes(text: str) -> frozenset[str]:
    """Return the model codes in ``text``, folded and without joiners.

    >>> sorted(extract_codes("Sony Cyber-shot DSC-W120 8.1MP 4GB Black"))
    ['dscw120']
    >>> sorted(extract_codes("Bose Acoustimass 5 Series III - AM53BK/ 200 Watts"))
    ['am53bk']
    >>> sorted(extract_codes("Panasonic 2-Line Phone KX-TS208W, Garmin 010-10609-00"))
    ['0101060900', 'kxts208w']
    """
    return _codes_of_folded(fold_text(text))


def _codes_of_folded(folded: str) -> frozenset[str]:
    """:func:`extract_codes` of a text already folded."""
    if folded.isascii() and not _HAS_DIGIT.search(folded):
        # a code has a digit; the many digit-free titles need no token work
        return _NO_CODES
    # letter-only tokens are never codes: leaving them out keeps them from crowding
    # the cache of token verdicts
    candidates = itertools.filterfalse(str.isalpha, _CODE_TOKEN.findall(folded))
    return frozenset(filter(None, map(_code_of_token, candidates)))


_NO_CODES: frozenset[str] = frozenset()


CODE_LEAD_TOKENS = 16
"""Words at the start of a text whose codes are the text's own: later words are usually a
description, which names other products' codes (the processor, the printer it fits).
Tokens of punctuation alone ("-", "(") are not words: "… edition - ( v. 4.0c ) - license
( 213076-b26 )" names its own code as its twelfth word."""

_WORD_CHARACTER = re.compile(r"\w")


def _lead_words(words: list[str]) -> list[str]:
    """The first :data:`CODE_LEAD_TOKENS` words of ``words`` and the punctuation among them."""
    if len(words) <= CODE_LEAD_TOKENS:
        return words
    counted = 0
    for n, word in enumerate(words):
        if _WORD_CHARACTER.search(word):
            counted += 1
            if counted == CODE_LEAD_TOKENS:
                return words[: n + 1]
    return words


_REFERENCE_WORDS = frozenset({"for", "with", "fits", "compatible", "supports", "replaces", "works"})
_SEPARATORS = frozenset({"-", "/", "|", ";", "\u2013", "\u2014"})
# A word that, lowercased and stripped of ",;:()", is a reference word (as own_codes
# tests it); finding none in an ASCII text lets own_codes keep every lead word at once.
_ANY_REFERENCE_WORD = re.compile(
    r"(?:^|\s)[,;:()]*(?:" + "|".join(sorted(_REFERENCE_WORDS)) + r")[,;:()]*(?=\s|$)"
)


def own_codes(text: str) -> frozenset[str]:
    """The model codes that name the product a text is about: those among its first
    :data:`CODE_LEAD_TOKENS` words, except the codes that follow "for", "with",
    "compatible"… up to the next separator (the products it fits, not its own).

    >>> sorted(own_codes("Add-On Handset For The KXTG6700B Phone - Black - KXTGA670B"))
    ['kxtga670b']
    >>> sorted(own_codes("Ink Cartridge For PIXMA iP1600, iP6210D Printers - 0617B002 Canon"))
    ['0617b002']
    >>> sorted(own_codes("HP Secure Path for Windows Workgroup Edition - ( v. 4.0c ) - "
    ...                  "license - 1 server ( 213076-B26 )"))
    ['213076b26']
    """
    if text.isascii():
        if not _HAS_DIGIT.search(text):
            return _NO_CODES
        lowered = text.lower()
        if not (
            any(word in lowered for word in _REFERENCE_WORDS)
            and _ANY_REFERENCE_WORD.search(lowered)
        ):
            # for ASCII, folding is lowercasing, done already
            return _codes_of_folded(" ".join(_lead_words(lowered.split())))
    kept: list[str] = []
    reference = False
    for word in _lead_words(text.split()):
        if word.lower().strip(",;:()") in _REFERENCE_WORDS:
            reference = True
        elif word in _SEPARATORS:
            reference = False
        elif not reference:
            kept.append(word)
    return extract_codes(" ".join(kept))


@functools.lru_cache(maxsize=CODE_TOKEN_CACHE_SIZE)
def _code_of_token(raw: str) -> str | None:
    """The model code a candidate token stands for, or None."""
    if len(raw) < MIN_CODE_LENGTH or raw.isalpha():
        return None
    token = raw
    # counted words, dates and ZIP+4 codes all have a joiner
    if "-" in raw or "/" in raw or "." in raw:
        if (
            _COUNTED_WORD.match(raw)
            or _DATE.match(raw)
            or _ZIP4.match(raw)
            or _APERTURE.match(raw.lower())
        ):
            return None
        token = _JOINERS.sub("", raw.strip("-/."))
    return token if is_model_code(token) else None


# A word starting with an ASCII digit, and the word after it ("" when none).
_NUMBER_WORD = re.compile(r"(?<!\S)([0-9]\S*)(?=\s+(\S+)|)")


def extract_numbers(text: str) -> frozenset[str]:
    """Return the numbers and quantities among the normalised tokens of ``text``.

    Quantities such as ``500gb`` are not model codes but still separate sibling
    products; tokens mixing letters and digits otherwise are left to the codes.

    >>> sorted(extract_numbers("Seagate 500GB 7200 RPM drive KX-TS208W"))
    ['500gb', '7200rpm']
    """
    return numbers_in_key(normalise_text(text))


def numbers_in_key(key: str) -> frozenset[str]:
    """:func:`extract_numbers` for text that is already normalised.

    A number followed by a unit word is one quantity, however it was written.

    >>> sorted(numbers_in_key("sony kdl 46xbr9 46 lcd 1080p"))
    ['1080p', '46']
    >>> numbers_in_key("seagate 750 gb drive") == numbers_in_key("seagate 750gb drive")
    True

    Roman numerals count as their numbers: those of two letters or more, and any after a
    word such as "part", "mark" or "vol" (a lone "i" or "v" is a word or an initial).

    >>> sorted(numbers_in_key("canon eos 5d mark iii")), sorted(numbers_in_key("tuning part i"))
    (['3', '5d'], ['1'])
    """
    if key.isascii():
        # only a word starting with a digit can be a number or a quantity
        pairs = _NUMBER_WORD.findall(key)
    else:
        words = key.split()
        pairs = [
            (word, words[n + 1] if n + 1 < len(words) else "")
            for n, word in enumerate(words)
            if not word.isalpha()
        ]
    found = {n for n in (_number_of(word, following) for word, following in pairs) if n}
    if not _ROMAN_VALUES.keys().isdisjoint(key.split()):
        values = (_ROMAN_VALUES.get(m.group(1) or m.group(2)) for m in _ROMAN.finditer(key))
        found.update(v for v in values if v)
    return frozenset(found) if found else _NO_CODES


_ROMAN_NUMERALS = "i ii iii iv v vi vii viii ix x xi xii xiii xiv xv xvi"
_ROMAN_VALUES = {numeral: str(n) for n, numeral in enumerate(_ROMAN_NUMERALS.split(" "), 1)}
# a numeral of two letters or more standing alone, or any after a word that counts
# (part I, Mark II, vol. V); one letter alone is a word or an initial
_ROMAN = re.compile(
    r"(?<!\S)(" + "|".join(n for n in _ROMAN_VALUES if len(n) > 1) + r")(?!\S)"
    r"|(?<!\S)(?:part|mark|mk|vol|volume|series|chapter|book|phase) ([ivx]{1,4})(?!\S)"
)


def _number_of(word: str, following: str) -> str | None:
    """The number or quantity a word stands for (with its unit when the next word is
    one), or None."""
    if word.isdigit():
        if len(following) >= 2 and _QUANTITY.match(word + following):
            return word + following
        return word
    return word if _QUANTITY.match(word) else None
