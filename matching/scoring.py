"""Pair scorers and the rule that combines their signals into one 0..1 score.

Every scorer here returns a float in ``[0, 1]`` (agreement signals in
``[-1, 1]``), scores identical inputs as a full match and is symmetric unless its
docstring says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rapidfuzz import fuzz

ArrayOrFloat = Any

# Weights of the similarity signals in the base score; they sum to 1 so that a
# pair identical on every signal scores exactly 1.0.
WEIGHT_CHAR_COSINE = 0.35
WEIGHT_WORD_COSINE = 0.25
WEIGHT_TOKEN_SET = 0.20
WEIGHT_TOKEN_SORT = 0.10
WEIGHT_PARTIAL = 0.10

# A shared model code closes this share of the gap to 1.0; a clash of codes or
# of numbers scales the score down by these factors.
CODE_AGREEMENT_GAIN = 0.5
CODE_CONFLICT_FACTOR = 0.75
NUMBER_CONFLICT_FACTOR = 0.9

# Codes shorter than this must be equal to agree; longer ones may contain each
# other (``kdl46xbr9`` vs ``kdl46xbr9b``, a colour suffix).
MIN_CONTAINED_CODE_LENGTH = 5


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


def codes_agree(a: str, b: str) -> bool:
    """Whether two model codes name the same product.

    >>> codes_agree("kdl46xbr9", "kdl46xbr9b"), codes_agree("w120", "w130")
    (True, False)
    """
    if a == b:
        return True
    if min(len(a), len(b)) < MIN_CONTAINED_CODE_LENGTH:
        return False
    return a in b or b in a


def code_agreement(a: frozenset[str], b: frozenset[str]) -> int:
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
    if not a.isdisjoint(b):
        return 1
    if any(codes_agree(x, y) for x in a for y in b):
        return 1
    return -1


def number_agreement(a: frozenset[str], b: frozenset[str]) -> float:
    """Overlap of number tokens: ``|a & b| / min(|a|, |b|)``, or ``1.0`` when either is empty.

    >>> number_agreement(frozenset({"500gb", "7200"}), frozenset({"500gb"}))
    1.0
    >>> number_agreement(frozenset({"500gb"}), frozenset({"250gb"}))
    0.0
    """
    if not a or not b:
        return 1.0
    return len(a & b) / min(len(a), len(b))


def weighted_similarity(
    char_cosine: ArrayOrFloat,
    word_cosine: ArrayOrFloat,
    token_set: ArrayOrFloat,
    token_sort: ArrayOrFloat,
    partial: ArrayOrFloat,
) -> ArrayOrFloat:
    """Weighted mean of the similarity signals, clipped to 0..1 (floats or arrays)."""
    value = (
        WEIGHT_CHAR_COSINE * char_cosine
        + WEIGHT_WORD_COSINE * word_cosine
        + WEIGHT_TOKEN_SET * token_set
        + WEIGHT_TOKEN_SORT * token_sort
        + WEIGHT_PARTIAL * partial
    )
    return np.clip(value, 0.0, 1.0)


def adjust_for_evidence(
    similarity: ArrayOrFloat, code: ArrayOrFloat, numbers: ArrayOrFloat
) -> ArrayOrFloat:
    """Raise the similarity for a shared code, lower it for clashing codes or numbers."""
    score = np.where(
        code > 0,
        similarity + (1.0 - similarity) * CODE_AGREEMENT_GAIN,
        np.where(code < 0, similarity * CODE_CONFLICT_FACTOR, similarity),
    )
    score = score * (NUMBER_CONFLICT_FACTOR + (1.0 - NUMBER_CONFLICT_FACTOR) * numbers)
    return np.clip(score, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class PairSignals:
    """The evidence gathered for one (item, catalog record) pair."""

    char_cosine: float
    word_cosine: float
    token_set: float
    token_sort: float
    partial: float
    code_agreement: int
    number_agreement: float

    @property
    def text_similarity(self) -> float:
        """Weighted mean of the similarity signals, 0..1."""
        return float(
            weighted_similarity(
                self.char_cosine, self.word_cosine, self.token_set, self.token_sort, self.partial
            )
        )


def combine_signals(signals: PairSignals) -> float:
    """Fold the signals of a pair into one 0..1 match score.

    >>> combine_signals(PairSignals(1.0, 1.0, 1.0, 1.0, 1.0, 0, 1.0))
    1.0
    >>> combine_signals(PairSignals(0.8, 0.8, 0.9, 0.8, 0.9, -1, 1.0)) < 0.7
    True
    """
    return float(
        adjust_for_evidence(
            signals.text_similarity, signals.code_agreement, signals.number_agreement
        )
    )


@dataclass(frozen=True, slots=True)
class SignalTable:
    """The signals of many pairs as parallel arrays, scored in one go."""

    char_cosine: np.ndarray
    word_cosine: np.ndarray
    token_set: np.ndarray
    token_sort: np.ndarray
    partial: np.ndarray
    code_agreement: np.ndarray
    number_agreement: np.ndarray

    def text_similarity(self) -> np.ndarray:
        return weighted_similarity(
            self.char_cosine, self.word_cosine, self.token_set, self.token_sort, self.partial
        )

    def scores(self) -> np.ndarray:
        return adjust_for_evidence(
            self.text_similarity(), self.code_agreement, self.number_agreement
        )

    def pair(self, position: int) -> PairSignals:
        """The signals of one pair."""
        return PairSignals(
            float(self.char_cosine[position]),
            float(self.word_cosine[position]),
            float(self.token_set[position]),
            float(self.token_sort[position]),
            float(self.partial[position]),
            int(self.code_agreement[position]),
            float(self.number_agreement[position]),
        )


def describe_signals(signals: PairSignals) -> str:
    """A short human-readable account of the decisive signals.

    >>> describe_signals(PairSignals(0.9, 0.8, 0.95, 0.9, 0.9, 1, 1.0))
    'name similarity 0.89; model code agrees'
    """
    parts = [f"name similarity {signals.text_similarity:.2f}"]
    if signals.code_agreement > 0:
        parts.append("model code agrees")
    elif signals.code_agreement < 0:
        parts.append("model codes differ")
    if signals.number_agreement < 1.0:
        parts.append(f"numbers agree {signals.number_agreement:.2f}")
    return "; ".join(parts)
