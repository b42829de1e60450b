"""The evidence about a candidate pair and the rule that turns it into a 0..1 score.

The score is a logistic function of the signals of a pair: similarities of the
whole texts and of their *leads* (the first tokens, where a composed text keeps
its name or title), how much of each side's words the other has (*coverage*),
agreement of model codes and numbers, a model code found in that one catalog
record only, and the *margins*: how far the pair leads the item's best other
candidate, and how far the item leads its *rivals* (the job's other items
nearest to it, see :mod:`matching.peers`) on the same record. A match should
stand out from its siblings and from other items wanting the same record.

The weights are fixed defaults, the same for every data set: an L2-regularised
logistic fit (``benchmarks/fit_scoring.py``) on the candidate pairs of three
public benchmark sets pooled (each set weighted equally), with the intercept
moved so that ``0.5`` is the best common acceptance threshold. Nothing here
depends on a particular catalog.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from matching.results import Evidence

# Weights of the similarity signals in the *text similarity* shown in reasons;
# they sum to 1, so identical texts have similarity 1.
TEXT_WEIGHTS = {
    "lead_char_cosine": 0.30,
    "char_cosine": 0.20,
    "word_cosine": 0.20,
    "token_set": 0.20,
    "partial": 0.10,
}

FEATURES = (
    "lead_char_cosine",
    "code_agrees",
    "code_differs",
    "unique_code",
    "number_agreement",
    "lead_char_margin",
    "rival_margin",
    "number_clash",
    "quantity_clash",
    "accessory_mismatch",
    "edition_mismatch",
    "colour_clash",
    "year_clash",
    "lead_item_coverage",
    "lead_record_coverage",
    "length_ratio",
    "item_words",
)
"""The columns of :meth:`SignalTable.features`: the evidence the *score* weighs.

Only signals whose meaning does not depend on how long or wordy a data set's texts
are: similarities of the leads, not of whole texts with their descriptions, and
margins over the other candidates."""

COEFFICIENTS = np.array(
    [
        1.91,
        2.26,
        -1.49,
        2.74,
        0.80,
        2.80,
        1.83,
        -0.65,
        -1.84,
        -0.01,
        -1.06,
        -2.49,
        -0.22,
        1.39,
        1.84,
        0.74,
        0.95,
    ]
)
"""Logistic weight of each feature (per unit), aligned with :data:`FEATURES`."""

INTERCEPT = -7.09
"""Logistic intercept of the score, calibrated at :data:`matching.acceptance.BASE_PRIOR`."""

RANK_FEATURES = FEATURES + (
    "char_cosine",
    "word_cosine",
    "token_set",
    "char_margin",
    "word_margin",
    "item_coverage",
    "record_coverage",
)
"""The columns of :meth:`SignalTable.rank_features`: what orders an item's candidates.

Within one item's candidates the texts are of one data set, so whole-text signals
help to order them even where their level says little about acceptance."""

RANK_COEFFICIENTS = np.array(
    [
        1.25,
        2.19,
        -1.16,
        2.00,
        0.60,
        2.21,
        4.83,
        -0.51,
        -0.55,
        0.00,
        -1.25,
        -1.33,
        -1.25,
        1.18,
        0.00,
        0.17,
        3.06,
        0.79,
        0.00,
        0.00,
        1.51,
        0.66,
        0.00,
        1.34,
    ]
)
"""Weight of each ranking feature, aligned with :data:`RANK_FEATURES` (no intercept:
only the order counts)."""

RIVAL_MARGIN_CAP = 0.15
"""A lead over the item's rivals counts up to this much: a clear lead is enough."""

# Text similarity a unique-code record needs before the code counts as unique.
UNIQUE_CODE_MIN_SIMILARITY = 0.3


@dataclass(frozen=True, slots=True)
class PairSignals:
    """The evidence gathered for one (item, catalog record) pair.

    Similarities are 0..1; ``code_agreement`` is 1 (a shared model code), -1 (both
    have codes, none shared) or 0; ``number_agreement`` is the overlap of number
    tokens (1.0 when either side has none); margins are this candidate's value
    minus the best other candidate's for the same item (-1..1); ``unique_code``
    is 1 when the record is the only catalog record with one of the item's codes.
    ``lead_char_cosine`` defaults to ``char_cosine`` (short texts are all lead).
    """

    char_cosine: float
    word_cosine: float
    token_set: float
    partial: float
    code_agreement: int
    number_agreement: float
    char_margin: float = 0.0
    word_margin: float = 0.0
    lead_char_cosine: float = math.nan
    lead_char_margin: float = math.nan
    unique_code: int = 0
    item_coverage: float = math.nan
    record_coverage: float = math.nan
    rival_margin: float = math.nan
    quantity_clash: int = 0
    accessory_mismatch: int = 0
    edition_mismatch: int = 0
    colour_clash: int = 0
    year_clash: int = 0
    lead_item_coverage: float = math.nan
    lead_record_coverage: float = math.nan
    length_ratio: float = 1.0
    item_words: float = 1.0

    def __post_init__(self) -> None:
        if math.isnan(self.lead_char_cosine):
            object.__setattr__(self, "lead_char_cosine", self.char_cosine)
        if math.isnan(self.lead_char_margin):
            object.__setattr__(self, "lead_char_margin", self.char_margin)
        for name in ("item_coverage", "record_coverage"):
            if math.isnan(getattr(self, name)):
                object.__setattr__(self, name, self.word_cosine)
        for name in ("item_coverage", "record_coverage"):
            if math.isnan(getattr(self, f"lead_{name}")):
                object.__setattr__(self, f"lead_{name}", getattr(self, name))
        if math.isnan(self.rival_margin):  # no other items known: nothing competes
            object.__setattr__(self, "rival_margin", min(self.char_cosine, RIVAL_MARGIN_CAP))

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
    partial: np.ndarray
    code_agreement: np.ndarray
    number_agreement: np.ndarray
    char_margin: np.ndarray
    word_margin: np.ndarray
    lead_char_cosine: np.ndarray
    lead_char_margin: np.ndarray
    unique_code: np.ndarray
    item_coverage: np.ndarray
    record_coverage: np.ndarray
    rival_margin: np.ndarray
    quantity_clash: np.ndarray
    accessory_mismatch: np.ndarray
    edition_mismatch: np.ndarray
    colour_clash: np.ndarray
    year_clash: np.ndarray
    lead_item_coverage: np.ndarray
    lead_record_coverage: np.ndarray
    length_ratio: np.ndarray
    item_words: np.ndarray

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
        """The model's feature matrix, one row per pair, columns as :data:`FEATURES`.

        A code found in one catalog record only is strong evidence, unless the rest
        of the texts disagree (a code collision, or a code inside a description):
        ``unique_code`` counts only with some text similarity behind it, and not when
        another pair of the texts' codes says they are variants (``code_agreement`` 0).
        """
        code = np.asarray(self.code_agreement)
        supported = self.text_similarity() >= UNIQUE_CODE_MIN_SIMILARITY
        return np.column_stack(
            [
                self.lead_char_cosine,
                (code > 0).astype(float),
                (code < 0).astype(float),
                (np.asarray(self.unique_code) > 0) & supported & (code > 0),
                self.number_agreement,
                self.lead_char_margin,
                self.rival_margin,
                self.number_agreement <= 0.0,
                self.quantity_clash,
                self.accessory_mismatch,
                self.edition_mismatch,
                self.colour_clash,
                self.year_clash,
                self.lead_item_coverage,
                self.lead_record_coverage,
                self.length_ratio,
                self.item_words,
            ]
        ).astype(float)

    def rank_features(self, features: np.ndarray | None = None) -> np.ndarray:
        """The ranking feature matrix, columns as :data:`RANK_FEATURES` (``features``:
        :meth:`features`, when already computed)."""
        own = self.features() if features is None else features
        return np.column_stack(
            [
                own,
                self.char_cosine,
                self.word_cosine,
                self.token_set,
                self.char_margin,
                self.word_margin,
                self.item_coverage,
                self.record_coverage,
            ]
        ).astype(float)

    def rank_values(self, features: np.ndarray | None = None) -> np.ndarray:
        """What orders the candidates of an item, larger first."""
        if not len(self):
            return np.zeros(0)
        return row_dot(self.rank_features(features), RANK_COEFFICIENTS)

    def logits(self, features: np.ndarray | None = None) -> np.ndarray:
        """The logit of every pair's score, before any job's prior is applied
        (``features``: :meth:`features`, when already computed)."""
        if not len(self):
            return np.zeros(0)
        own = self.features() if features is None else features
        return row_dot(own, COEFFICIENTS) + INTERCEPT

    def scores(self, prior_shift: float = 0.0) -> np.ndarray:
        """The 0..1 match score of every pair (``prior_shift``: the job's, see
        :mod:`matching.acceptance`)."""
        return 1.0 / (1.0 + np.exp(-(self.logits() + prior_shift)))

    def pair(self, position: int) -> PairSignals:
        """The signals of one pair."""
        values: dict[str, Any] = {
            name: float(getattr(self, name)[position]) for name in _PAIR_FIELDS
        }
        for name in (
            "code_agreement",
            "unique_code",
            "quantity_clash",
            "accessory_mismatch",
            "edition_mismatch",
            "colour_clash",
            "year_clash",
        ):
            values[name] = int(values[name])
        return PairSignals(**values)


_PAIR_FIELDS = tuple(f.name for f in fields(PairSignals))


def row_dot(matrix: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``matrix @ weights``, each row's sum taken in the same order whatever the other
    rows: a matrix product (BLAS) sums a row differently by where it falls in the matrix,
    so a pair scored in another batch (a chunk's share in a helper process, say) differed
    in its last bits, and candidates that tie swapped places.

    >>> m = np.random.default_rng(0).random((9, 17)); w = np.arange(17.0)
    >>> bool((row_dot(m, w)[3:5] == row_dot(m[3:5], w)).all())
    True
    """
    return (np.asarray(matrix, dtype=float) * weights).sum(axis=1)


def explain(features: np.ndarray, prior_shift: float = 0.0) -> tuple[Evidence, ...]:
    """What moved one pair's score: each signal's contribution to its log-odds (a row of
    :meth:`SignalTable.features`), the baseline, and the job's prior shift; largest first.
    The contributions sum to the logit of the score.

    >>> row = np.zeros(len(FEATURES)); row[FEATURES.index("unique_code")] = 1.0
    >>> [e.signal for e in explain(row)]
    ['baseline', 'unique_code']
    """
    return explain_rows(np.asarray(features)[None, :], prior_shift)[0]


def explain_rows(features: np.ndarray, prior_shift: float = 0.0) -> list[tuple[Evidence, ...]]:
    """:func:`explain` for every row of a feature matrix, in one vectorised pass."""
    n = features.shape[0]
    names = (*FEATURES, "baseline", "job_prior")
    values = np.column_stack([features, np.ones(n), np.full(n, prior_shift)]).round(4)
    weights = np.concatenate([COEFFICIENTS, [0.0, 1.0]])
    contributions = (values * weights).round(4)
    contributions[:, -2] = round(INTERCEPT, 4)
    rows, cols = np.nonzero(contributions)
    magnitude = np.abs(contributions[rows, cols])
    order = np.lexsort((cols, -magnitude, rows))
    rows, cols = rows[order], cols[order]
    found = [
        Evidence(names[j], v, c)
        for j, v, c in zip(
            cols.tolist(),
            values[rows, cols].tolist(),
            contributions[rows, cols].tolist(),
            strict=True,
        )
    ]
    bounds = np.searchsorted(rows, np.arange(n + 1)).tolist()
    return [tuple(found[bounds[i] : bounds[i + 1]]) for i in range(n)]


def combine_signals(signals: PairSignals) -> float:
    """Fold the signals of one pair into its 0..1 match score.

    >>> strong = PairSignals(0.95, 0.9, 1.0, 1.0, 1, 1.0, 0.4, 0.4)
    >>> weak = PairSignals(0.3, 0.2, 0.5, 0.5, -1, 0.0, -0.2, -0.1)
    >>> combine_signals(strong) > 0.9 > 0.1 > combine_signals(weak)
    True
    """
    return float(SignalTable.from_pairs([signals]).scores()[0])


def describe_signals(signals: PairSignals, *, matched_code: str | None = None) -> str:
    """A short human-readable account of the decisive signals.

    >>> describe_signals(PairSignals(0.9, 0.8, 0.95, 0.9, 1, 1.0))
    'name similarity 0.89; model code agrees'
    >>> describe_signals(PairSignals(0.9, 0.8, 0.95, 0.9, 1, 1.0), matched_code="dscw120")
    'model code DSCW120 matched; name similarity 0.89'
    >>> describe_signals(PairSignals(0.6, 0.5, 0.7, 0.7, 0, 1.0, rival_margin=-0.2))
    'name similarity 0.61; another item fits this record better'
    """
    return describe(
        signals.text_similarity,
        signals.code_agreement,
        signals.number_agreement,
        signals.char_margin + signals.word_margin,
        signals.rival_margin,
        matched_code=matched_code,
    )


def describe(
    similarity: float,
    code_agreement: float,
    number_agreement: float,
    margins: float,
    rival_margin: float,
    *,
    matched_code: str | None = None,
) -> str:
    """:func:`describe_signals` from the signals it reads (``margins``: the character and
    word margins summed), for callers that hold them as arrays."""
    parts = [f"name similarity {similarity:.2f}"]
    if matched_code is not None:
        parts.insert(0, f"model code {matched_code.upper()} matched")
    elif code_agreement > 0:
        parts.append("model code agrees")
    elif code_agreement < 0:
        parts.append("model codes differ")
    if number_agreement < 1.0:
        parts.append(f"numbers agree {number_agreement:.2f}")
    if margins > 0.2:
        parts.append("clearly ahead of other candidates")
    if rival_margin < -RIVAL_NOTE_BELOW:
        parts.append("another item fits this record better")
    return "; ".join(parts)


RIVAL_NOTE_BELOW = 0.05
"""How far a rival item must lead on a record before a reason mentions it."""
