"""The evidence about a candidate pair and the rule that turns it into a 0..1 score.

The score starts from the *text similarity*, a weighted mean of similarity
signals (so identical texts score 1.0), and is then moved by evidence:

- a shared model code closes part of the gap to 1.0; clashing codes scale it down;
- clashing numbers (``500gb`` vs ``750gb``) scale it down;
- a clear lead over the item's best other candidate (the *margin*) raises it a
  little, a deficit lowers it: a match should stand out from its siblings.

The constants are fixed defaults, the same for every data set.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

# Weights of the similarity signals in the *text similarity* shown in reasons and
# used to confirm a code hit; they sum to 1, so identical texts have similarity 1.
TEXT_WEIGHTS = {
    "char_cosine": 0.35,
    "word_cosine": 0.25,
    "token_set": 0.20,
    "token_sort": 0.10,
    "partial": 0.10,
}

# A shared model code closes this share of the gap to 1.0; a clash of codes or
# of numbers scales the score down by these factors.
CODE_AGREEMENT_GAIN = 0.5
CODE_CONFLICT_FACTOR = 0.75
NUMBER_CONFLICT_FACTOR = 0.9
# Score added per unit of cosine margin over the best other candidate, and the
# largest margin (either sign) that counts.
MARGIN_WEIGHT = 0.5
MAX_MARGIN = 0.2

FEATURES = (
    "char_cosine",
    "word_cosine",
    "token_set",
    "token_sort",
    "partial",
    "code_agrees",
    "code_differs",
    "number_agreement",
    "char_margin",
    "word_margin",
)


@dataclass(frozen=True, slots=True)
class PairSignals:
    """The evidence gathered for one (item, catalog record) pair.

    Similarities are 0..1; ``code_agreement`` is 1 (a shared model code), -1 (both
    have codes, none shared) or 0; ``number_agreement`` is the overlap of number
    tokens (1.0 when either side has none); margins are this candidate's cosine
    minus the best other candidate's for the same item (-1..1).
    """

    char_cosine: float
    word_cosine: float
    token_set: float
    token_sort: float
    partial: float
    code_agreement: int
    number_agreement: float
    char_margin: float = 0.0
    word_margin: float = 0.0

    @property
    def text_similarity(self) -> float:
        """Weighted mean of the text similarity signals, 0..1."""
        return float(sum(w * getattr(self, name) for name, w in TEXT_WEIGHTS.items()))


@dataclass(frozen=True, slots=True)
class SignalTable:
    """The signals of many pairs as parallel arrays (fields as in :class:`PairSignals`)."""

    char_cosine: np.ndarray
    word_cosine: np.ndarray
    token_set: np.ndarray
    token_sort: np.ndarray
    partial: np.ndarray
    code_agreement: np.ndarray
    number_agreement: np.ndarray
    char_margin: np.ndarray
    word_margin: np.ndarray

    @classmethod
    def from_pairs(cls, pairs: list[PairSignals]) -> SignalTable:
        return cls(
            *(
                np.array([getattr(p, f.name) for p in pairs], dtype=float)
                for f in fields(PairSignals)
            )
        )

    def __len__(self) -> int:
        return len(self.char_cosine)

    def text_similarity(self) -> np.ndarray:
        return np.clip(sum(w * getattr(self, name) for name, w in TEXT_WEIGHTS.items()), 0.0, 1.0)

    def features(self) -> np.ndarray:
        """The model's feature matrix, one row per pair, columns as :data:`FEATURES`."""
        code = np.asarray(self.code_agreement)
        return np.column_stack(
            [
                self.char_cosine,
                self.word_cosine,
                self.token_set,
                self.token_sort,
                self.partial,
                (code > 0).astype(float),
                (code < 0).astype(float),
                self.number_agreement,
                self.char_margin,
                self.word_margin,
            ]
        )

    def scores(self) -> np.ndarray:
        """The 0..1 match score of every pair."""
        score = self.text_similarity()
        code = np.asarray(self.code_agreement)
        score = np.where(code > 0, score + (1.0 - score) * CODE_AGREEMENT_GAIN, score)
        score = np.where(code < 0, score * CODE_CONFLICT_FACTOR, score)
        score = score * (
            NUMBER_CONFLICT_FACTOR + (1.0 - NUMBER_CONFLICT_FACTOR) * self.number_agreement
        )
        margin = np.clip((self.char_margin + self.word_margin) / 2.0, -MAX_MARGIN, MAX_MARGIN)
        return np.clip(score + MARGIN_WEIGHT * margin * score, 0.0, 1.0)

    def pair(self, position: int) -> PairSignals:
        """The signals of one pair."""
        values: list[Any] = [float(getattr(self, f.name)[position]) for f in fields(PairSignals)]
        values[5] = int(values[5])
        return PairSignals(*values)


def combine_signals(signals: PairSignals) -> float:
    """Fold the signals of one pair into its 0..1 match score.

    >>> strong = PairSignals(0.95, 0.9, 1.0, 0.95, 1.0, 1, 1.0, 0.4, 0.4)
    >>> weak = PairSignals(0.3, 0.2, 0.5, 0.4, 0.5, -1, 0.0, -0.2, -0.1)
    >>> combine_signals(strong) > 0.9 > 0.3 > combine_signals(weak)
    True
    """
    return float(SignalTable.from_pairs([signals]).scores()[0])


def describe_signals(signals: PairSignals, *, matched_code: str | None = None) -> str:
    """A short human-readable account of the decisive signals.

    >>> describe_signals(PairSignals(0.9, 0.8, 0.95, 0.9, 0.9, 1, 1.0))
    'name similarity 0.89; model code agrees'
    >>> describe_signals(PairSignals(0.9, 0.8, 0.95, 0.9, 0.9, 1, 1.0), matched_code="dscw120")
    'model code DSCW120 matched; name similarity 0.89'
    """
    parts = [f"name similarity {signals.text_similarity:.2f}"]
    if matched_code is not None:
        parts.insert(0, f"model code {matched_code.upper()} matched")
    elif signals.code_agreement > 0:
        parts.append("model code agrees")
    elif signals.code_agreement < 0:
        parts.append("model codes differ")
    if signals.number_agreement < 1.0:
        parts.append(f"numbers agree {signals.number_agreement:.2f}")
    return "; ".join(parts)
