"""Text normalisation shared by every matching stage.

The key produced here is what the ``exact`` stage compares and what the
vectorisers and scorers see.
"""

from __future__ import annotations

import html
import re
import unicodedata

_NON_ALNUM = re.compile(r"[\W_]+")
# a character reference with its closing semicolon (&eacute; &#233; &#xE9; &amp;): texts
# scraped from web pages carry them, and read as words they would be "eacute" or "233"
_CHARACTER_REFERENCE = re.compile(
    r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
)
# Fixed-point iterations are a safety net for the rare code points whose
# casefold / compatibility decomposition interact; ordinary text settles at once.
_MAX_PASSES = 6


def strip_accents(text: str) -> str:
    """Remove combining marks after canonical decomposition.

    >>> strip_accents("Café Crème")
    'Cafe Creme'
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)


def unescape_references(text: str) -> str:
    """Decode HTML character references that end with a semicolon; leave any other ``&``.

    >>> unescape_references("Fr&#233;d&#233;ric &amp; the VLDB Journal &mdash; AT&T R&D")
    'Frédéric & the VLDB Journal — AT&T R&D'
    >>> unescape_references("this&not; that&not that &bogus;")
    'this¬ that&not that &bogus;'
    """
    if "&" not in text:
        return text
    return _CHARACTER_REFERENCE.sub(lambda m: html.unescape(m.group(0)), text)


def fold_text(text: str) -> str:
    """Decode HTML character references, casefold, NFKC-normalise and strip accents,
    keeping punctuation.

    >>> fold_text("Ｓｏｎｙ DSC-W120 Café")
    'sony dsc-w120 cafe'
    >>> fold_text("Caf&eacute; &amp; Bar")
    'cafe & bar'
    """
    text = unescape_references(text)
    if text.isascii():
        return text.lower()
    return strip_accents(unicodedata.normalize("NFKC", text).casefold())


def _normalise_once(text: str) -> str:
    # Whitespace is non-alphanumeric too: once every run of it and of punctuation is one
    # space, stripping the ends is all that joining the split words would still do.
    return _NON_ALNUM.sub(" ", fold_text(text)).strip()


def normalise_text(text: str) -> str:
    """Return the comparison key of ``text``.

    Casefolds, applies Unicode NFKC, strips accents, turns punctuation and
    underscores into spaces and collapses whitespace. Idempotent.

    >>> normalise_text("  Sony  Cyber-shot® DSC-W120 (Black) ")
    'sony cyber shot dsc w120 black'
    >>> normalise_text("Crème  Brûlée")
    'creme brulee'
    """
    result = _normalise_once(text)
    if result.isascii():
        return result
    for _ in range(_MAX_PASSES):
        again = _normalise_once(result)
        if again == result:
            break
        result = again
    return result


def tokens(text: str) -> list[str]:
    """Split normalised text into word tokens.

    >>> tokens("Sony DSC-W120, 8.1MP")
    ['sony', 'dsc', 'w120', '8', '1mp']
    """
    return normalise_text(text).split()
