"""Text normalisation shared by every matching stage.

The key produced here is what the ``exact`` stage compares and what the
vectorisers and scorers see.
"""

from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[\W_]+")
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


def fold_text(text: str) -> str:
    """Casefold, NFKC-normalise and strip accents, keeping punctuation.

    >>> fold_text("Ｓｏｎｙ DSC-W120 Café")
    'sony dsc-w120 cafe'
    """
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
