"""Scoring an item's candidate catalog records: retrieve, shortlist, gather signals, score.

:class:`CandidateScorer` holds the read-only catalog side (vectors, codes,
numbers, normalised texts) and scores a batch of items in a few vectorised
passes: n-gram retrieval, a shortlist by n-gram and word cosine, then the
RapidFuzz scorers and code / number agreement on the shortlist only.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from rapidfuzz import fuzz, process

from matching.codes import numbers_in_key
from matching.peers import PeerSet
from matching.progress import Progress, map_reporting, no_progress, scaled
from matching.retrieval import DENSE_SCORE_SHARE, NgramRetriever, locality_order
from matching.scoring import RIVAL_MARGIN_CAP, SignalTable
from matching.similarity import code_agreement, number_agreement
from matching.variants import NO_MARKS, Marks, marks, variant_signals
from matching.vectors import (
    CharNgramVectoriser,
    WordVectoriser,
    digit_ngrams,
    freeze,
    gather_rows,
    rowwise_cosine,
)

RETRIEVAL_CANDIDATES = 30
"""Catalog records retrieved per item by n-gram cosine."""

DENSE_RETRIEVAL_CANDIDATES = 150
"""Catalog records kept for an item whose first :data:`RETRIEVAL_CANDIDATES` are a
dense family of near-ties (see :meth:`NgramRetriever.top_k_matrix`): large catalogs hold
families of more look-alikes than that."""

DENSE_RETRIEVAL_POOL = 600
"""Records a dense family's item retrieves before it keeps its
:data:`DENSE_RETRIEVAL_CANDIDATES` best by exact n-gram cosine. Retrieval scores leave
common n-grams out, so a family's members tie on them although the words that tell
them apart (a colour, an edition, a number) are common n-grams: the exact cosine
counts those. At 1M synthetic records a third of the right records missed by the
150 best retrieval scores were among the 600 best. The pool grows with the catalog (see
:func:`dense_pool`): at 100k records the wider pool found nothing more and cost a tenth
of the chunk's matching time."""

DENSE_POOL_RECORDS = 1_000
"""Catalog records per record of a dense family's pool, between
:data:`DENSE_RETRIEVAL_CANDIDATES` and :data:`DENSE_RETRIEVAL_POOL`."""


def dense_pool(records: int) -> int:
    """Records a dense family's item retrieves from a catalog of ``records``: no more than
    it keeps up to 150k records, then one per thousand, up to :data:`DENSE_RETRIEVAL_POOL`.

    >>> dense_pool(100_000), dense_pool(300_000), dense_pool(1_000_000)
    (150, 300, 600)
    """
    return min(DENSE_RETRIEVAL_POOL, max(DENSE_RETRIEVAL_CANDIDATES, records // DENSE_POOL_RECORDS))


LARGE_DENSE_SCORE_SHARE = 0.8
"""The :data:`~matching.retrieval.DENSE_SCORE_SHARE` of catalogs whose dense pool is wider
than the records it keeps (over 150k records, see :func:`dense_pool`).

0.9 left a fifth of the right records that 1M synthetic records' retrieval missed to
queries whose family words are common n-grams (only a few rare n-grams, a typo's among
them, spread the scores): 0.8 found all but 19 of 12,553 (hit@1 0.926 -> 0.934), and at
300k hit@1 0.943 -> 0.950 for 15 % more matching CPU. At 100k it cost a fifth of the
matching time for 0.002 of hit@1, so smaller catalogs keep 0.9."""


def dense_share(records: int) -> float:
    """The share of its best retrieval score a query's k-th must reach to count as a dense
    family in a catalog of ``records``.

    >>> dense_share(100_000), dense_share(1_000_000)
    (0.9, 0.8)
    """
    if dense_pool(records) > DENSE_RETRIEVAL_CANDIDATES:
        return LARGE_DENSE_SCORE_SHARE
    return DENSE_SCORE_SHARE


RERANK_CANDIDATES = 5
"""Retrieved records per item scored with every signal (the best by n-gram + word cosine)."""

FUZZY_LEAD_TOKENS = 12
ITEM_WORDS_CAP = 4
"""Words of an item's lead beyond which more words add no evidence (``item_words``)."""
"""Tokens at the start of each text that the RapidFuzz scorers compare.

Composed texts put the name first; long descriptions after it would make the
edit-distance scorers slow and dilute them, while the cosines still see them.
"""

MAX_SIGNAL_CODE_FREQUENCY = 3
"""A code in more catalog records than this is a family name, not evidence."""


@dataclass(frozen=True, slots=True)
class ScoredPairs:
    """Candidate pairs of a batch of items, grouped by item, with signals and scores."""

    items: np.ndarray  # position of the item in the batch
    rows: np.ndarray  # catalog row
    signals: SignalTable
    scores: np.ndarray
    text_similarity: np.ndarray
    logits: np.ndarray  # before the job's prior shift
    features: np.ndarray  # the model's features, one row per pair
    prior_shift: float
    rank: np.ndarray  # orders an item's candidates (see matching.scoring.RANK_FEATURES)

    def by_item(self, n_items: int) -> list[list[int]]:
        """Pair positions per item, best ranked first (ties: better score, then lower
        catalog row)."""
        order = np.lexsort((self.rows, -self.scores, -self.rank, self.items))
        bounds = np.searchsorted(self.items[order], np.arange(n_items + 1))
        return [order[bounds[i] : bounds[i + 1]].tolist() for i in range(n_items)]


@dataclass(frozen=True, slots=True, eq=False)
class CandidateScorer:
    """The catalog side of fuzzy matching, immutable once built."""

    keys: list[str]
    # Per-row codes and numbers as tuples: a frozenset costs 216 bytes even when tiny.
    codes: list[tuple[str, ...]]
    numbers: list[tuple[str, ...]]
    marks: list[Marks]  # of each record's lead: quantities, accessory and edition words
    code_frequency: dict[str, int]
    char: CharNgramVectoriser
    char_matrix: sp.csr_matrix
    retriever: NgramRetriever
    words: WordVectoriser
    word_matrix: sp.csr_matrix

    @classmethod
    def build(
        cls,
        keys: list[str],
        codes: Sequence[frozenset[str]],
        *,
        progress: Progress | None = None,
        fitted: tuple[CharNgramVectoriser, sp.csr_matrix] | None = None,
    ) -> CandidateScorer:
        """Index normalised catalog texts ``keys`` and their model ``codes``.

        ``progress``, when given, is called with the share of the work done (0..1) as the
        build goes; an exception it raises stops the build. ``fitted``: the n-gram
        vectoriser and matrix of ``keys`` (``CharNgramVectoriser.fit(keys)``), if made."""
        report = progress or no_progress
        frequency = Counter(code for cs in codes for code in cs)
        signal_frequency = {c: n for c, n in frequency.items() if n <= MAX_SIGNAL_CODE_FREQUENCY}
        char, char_matrix = fitted or CharNgramVectoriser.fit(keys)
        report(0.3)
        words, word_matrix = WordVectoriser.fit(keys)
        report(0.42)
        # Numbers and model codes are what tell a family's look-alikes apart.
        retriever = NgramRetriever.build(
            char_matrix,
            telling_terms=digit_ngrams(char.vocabulary),
            locality=locality_order(keys),
        )
        for array in (char.vocabulary, char.idf, words.idf, retriever.document_frequency):
            array.flags.writeable = False
        report(0.5)
        numbers = map_reporting(_numbers_of, keys, scaled(report, 0.5, 0.65))
        key_marks = map_reporting(_marks_of, keys, scaled(report, 0.65, 1.0))
        return cls(
            keys=keys,
            codes=[
                _compact(c for c in cs if c in signal_frequency) if cs else _EMPTY for cs in codes
            ],
            numbers=numbers,
            marks=key_marks,
            code_frequency=signal_frequency,
            char=char,
            char_matrix=freeze(char_matrix),
            retriever=retriever,
            words=words,
            word_matrix=freeze(word_matrix),
        )

    @property
    def nbytes(self) -> int:
        total = self.char.nbytes + self.words.nbytes + self.retriever.nbytes
        for m in (self.char_matrix, self.word_matrix):
            total += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        total += sum(sys.getsizeof(s) for s in self.keys)
        total += sum(sys.getsizeof(c) for c in self.codes if c)
        total += sum(sys.getsizeof(n) for n in self.numbers if n)
        total += sum(sys.getsizeof(t) for c in self.codes for t in c)
        total += sum(sys.getsizeof(m) + 200 for m in self.marks if m is not NO_MARKS)
        total += 3 * sys.getsizeof(self.keys) + 100 * len(self.code_frequency)
        return int(total)

    def score(
        self,
        keys: Sequence[str],
        codes: Sequence[frozenset[str]],
        forced_rows: Sequence[int | None],
        *,
        shortlist: int = RERANK_CANDIDATES,
        peers: PeerSet | None = None,
        peer_rows: Sequence[int] | None = None,
    ) -> ScoredPairs:
        """Score the candidates of each item.

        ``keys`` are the items' normalised texts, ``codes`` their model codes (see
        :func:`~matching.codes.extract_codes`); ``forced_rows[i]``, when not None,
        is always among item i's candidates. ``peers`` are the other items of the
        job, rivals for the same records; ``peer_rows[i]`` is item i's own row there
        (-1 if none).
        """
        item_chars = self.char.transform(keys)
        item_words = self.words.transform(keys)
        items, rows, char_cos, word_cos, core = self._shortlist(
            item_chars, item_words, forced_rows, shortlist
        )
        frequency = self.code_frequency
        item_codes = [
            frozenset(c for c in cs if frequency.get(c, 0) <= MAX_SIGNAL_CODE_FREQUENCY)
            for cs in codes
        ]
        item_numbers = [numbers_in_key(k) for k in keys]
        # Leads are computed once per item and once per distinct catalog row, not per pair.
        unique_rows, row_of_pair = np.unique(rows, return_inverse=True)
        row_keys = [self.keys[r] for r in unique_rows.tolist()]
        item_leads = [_lead(k) for k in keys]
        row_leads = [_lead(k) for k in row_keys]
        left = [item_leads[i] for i in items.tolist()]
        right = [row_leads[j] for j in row_of_pair.tolist()]
        code = np.zeros(len(rows), dtype=np.int8)
        numbers = np.ones(len(rows))
        variants = np.zeros((len(rows), 5), dtype=np.int8)
        item_marks = [marks(k) for k in item_leads]
        row_marks = self.marks
        for n, (i, r) in enumerate(zip(items.tolist(), rows.tolist(), strict=True)):
            if item_codes[i] and self.codes[r]:
                code[n] = code_agreement(item_codes[i], self.codes[r])
            if item_numbers[i] and self.numbers[r]:
                numbers[n] = number_agreement(item_numbers[i], self.numbers[r])
            if item_marks[i] is not row_marks[r]:
                variants[n] = variant_signals(item_marks[i], row_marks[r])
        sides = ((item_leads, list(keys), items), (row_leads, row_keys, row_of_pair))
        cut = _shortened_pairs(*sides)  # pairs whose leads are not their whole texts
        lead_cos = char_cos.copy()
        if len(cut):
            # the leads' cosine, or the whole texts' where that is higher: when one side's
            # first field is missing from the other (authors first against a title first),
            # the leads compare different things and the whole texts still agree
            lead_cos[cut] = np.maximum(
                np.minimum(rowwise_cosine(*_lead_vectors(self.char, sides, cut)), 1.0),
                char_cos[cut],
            )
        forced_of_item = np.array([-1 if f is None else f for f in forced_rows], dtype=np.int64)
        item_side, record_side = gather_rows(item_words, items), gather_rows(self.word_matrix, rows)
        item_coverage = _coverage(item_side, record_side)
        record_coverage = _coverage(record_side, item_side)
        lead_coverage = self._lead_coverage(sides, cut, (item_coverage, record_coverage))
        table = SignalTable(
            char_cosine=char_cos,
            word_cosine=word_cos,
            token_set=_pairwise(left, right, fuzz.token_set_ratio),
            partial=_pairwise(left, right, fuzz.partial_ratio),
            code_agreement=code,
            number_agreement=numbers,
            char_margin=_margin(items, char_cos, core),
            word_margin=_margin(items, word_cos, core),
            lead_char_cosine=lead_cos,
            lead_char_margin=_margin(items, lead_cos, core),
            unique_code=(rows == forced_of_item[items]).astype(np.int8),
            item_coverage=item_coverage,
            record_coverage=record_coverage,
            rival_margin=np.minimum(
                char_cos - self._rival_cosine(item_chars, items, rows, peers, peer_rows),
                RIVAL_MARGIN_CAP,
            ),
            quantity_clash=variants[:, 0],
            accessory_mismatch=variants[:, 1],
            edition_mismatch=variants[:, 2],
            colour_clash=variants[:, 3],
            year_clash=variants[:, 4],
            **lead_coverage,
        )
        features = table.features()
        logits = table.logits(features)
        shift = peers.prior_shift if peers is not None else 0.0
        scores = 1.0 / (1.0 + np.exp(-(logits + shift)))
        return ScoredPairs(
            items,
            rows,
            table,
            scores,
            table.text_similarity(),
            logits,
            features,
            shift,
            table.rank_values(features),
        )

    def _rival_cosine(
        self,
        item_chars: sp.csr_matrix,
        items: np.ndarray,
        rows: np.ndarray,
        peers: PeerSet | None,
        peer_rows: Sequence[int] | None,
    ) -> np.ndarray:
        if peers is None:
            return np.zeros(len(rows))
        own = np.full(item_chars.shape[0], -1, dtype=np.int64)
        if peer_rows is not None:
            own[:] = np.asarray(peer_rows, dtype=np.int64)
        return peers.rival_cosine(own, items, self.char_matrix, rows)

    def _lead_coverage(
        self,
        sides: tuple[tuple[list[str], list[str], np.ndarray], ...],
        cut: np.ndarray,
        whole: tuple[np.ndarray, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """Word coverage both ways between the pairs' leads, and their length ratio.

        The whole-text coverage is diluted where a long description follows the name;
        the leads say whether the name itself has words the other side lacks. The
        record's coverage is its lead's or its whole text's, whichever is higher: where
        the two sides are composed of different fields (the item's authors and title
        against the record's title and year), the item's lead holds another field and
        only its whole text shows that it has the record's name
        (``benchmarks/unseen_sets.py``, field layouts). The item's coverage stays its
        lead's: taking the higher of the two there too cost DBLP-ACM 0.005 of F1
        (papers by the same authors in the same venue). ``sides`` and ``cut`` are as for
        :func:`_lead_vectors`; ``whole`` is the whole texts' coverage both ways, which
        is the leads' where neither text was shortened.
        """
        lengths = [
            np.array([k.count(" ") + 1 for k in leads], dtype=float)[of_pair]
            for leads, _, of_pair in sides
        ]
        out = {
            "lead_item_coverage": whole[0].copy(),
            "lead_record_coverage": whole[1].copy(),
            "length_ratio": np.minimum(*lengths) / np.maximum(np.maximum(*lengths), 1.0),
            "item_words": np.minimum(lengths[0], ITEM_WORDS_CAP) / ITEM_WORDS_CAP,
        }
        if len(cut):
            left, right = _lead_vectors(self.words, sides, cut)
            out["lead_item_coverage"][cut] = _coverage(left, right)
            out["lead_record_coverage"][cut] = np.maximum(_coverage(right, left), whole[1][cut])
        return out

    def _char_cosine(
        self, item_chars: sp.csr_matrix, items: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        return np.minimum(
            rowwise_cosine(gather_rows(item_chars, items), gather_rows(self.char_matrix, rows)),
            1.0,
        )

    def _retrieve(
        self, item_chars: sp.csr_matrix, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(items, rows, char cosine)`` of each item's ``k`` retrieved candidates, by item."""
        records = self.retriever.postings.shape[1]
        top = self.retriever.top_k_matrix(
            item_chars, k=k, dense_k=dense_pool(records), dense_share=dense_share(records)
        )
        items = np.repeat(np.arange(item_chars.shape[0], dtype=np.int64), np.diff(top.indptr))
        rows = top.indices.astype(np.int64)
        cosine = self._char_cosine(item_chars, items, rows)
        return _best_per_item(items, rows, cosine, max(k, DENSE_RETRIEVAL_CANDIDATES))

    def _shortlist(
        self,
        item_chars: sp.csr_matrix,
        item_words: sp.csr_matrix,
        forced_rows: Sequence[int | None],
        size: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Retrieve, then keep the ``size`` best per item by n-gram + word cosine.

        Returns ``(items, rows, char cosine, word cosine, core)``, grouped by item;
        ``core`` marks each item's first :data:`RERANK_CANDIDATES`, the candidates that
        margins are measured against whatever ``size`` is, so that a longer list of
        candidates scores its first ones exactly as :meth:`score` with the default does.
        """
        items, rows_arr, char_cos = self._retrieve(item_chars, max(size, RETRIEVAL_CANDIDATES))
        n_items = item_chars.shape[0]
        forced_of_item = np.array([-1 if f is None else f for f in forced_rows], dtype=np.int64)
        already = np.zeros(n_items, dtype=bool)
        already[items[rows_arr == forced_of_item[items]]] = True
        missing = np.flatnonzero((forced_of_item >= 0) & ~already)
        if len(missing):
            items = np.concatenate([items, missing])
            rows_arr = np.concatenate([rows_arr, forced_of_item[missing]])
            char_cos = np.concatenate(
                [char_cos, self._char_cosine(item_chars, missing, forced_of_item[missing])]
            )
            grouped = np.argsort(items, kind="stable")
            items, rows_arr, char_cos = items[grouped], rows_arr[grouped], char_cos[grouped]
        if not len(rows_arr):
            empty = np.zeros(0)
            return items, rows_arr, empty, empty, np.zeros(0, dtype=bool)
        is_forced = rows_arr == forced_of_item[items]
        word_cos = np.minimum(
            rowwise_cosine(gather_rows(item_words, items), gather_rows(self.word_matrix, rows_arr)),
            1.0,
        )
        priority = char_cos + word_cos
        priority[is_forced] = np.inf
        order = np.lexsort((rows_arr, -priority, items))
        sorted_items = items[order]
        rank = np.arange(len(order)) - np.searchsorted(sorted_items, sorted_items)
        chosen = np.sort(order[rank < size])
        core = np.zeros(len(order), dtype=bool)
        core[order[rank < RERANK_CANDIDATES]] = True
        return items[chosen], rows_arr[chosen], char_cos[chosen], word_cos[chosen], core[chosen]


_EMPTY: tuple[str, ...] = ()


def _best_per_item(
    items: np.ndarray, rows: np.ndarray, cosine: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``size`` pairs of each item with the highest ``cosine`` (ties: lower row),
    grouped by item in their former order; all of them when an item has no more."""
    lengths = np.bincount(items, minlength=int(items.max(initial=-1)) + 1)
    if not len(lengths) or lengths.max() <= size:
        return items, rows, cosine
    order = np.lexsort((rows, -cosine, items))
    rank = np.arange(len(order)) - np.searchsorted(items[order], items[order])
    chosen = np.sort(order[rank < size])
    return items[chosen], rows[chosen], cosine[chosen]


def _numbers_of(key: str) -> tuple[str, ...]:
    # a frozenset's values are distinct already: _compact without its set()
    return tuple(sorted(numbers_in_key(key))) or _EMPTY


def _marks_of(key: str) -> Marks:
    return marks(_lead(key))


def _lead(key: str) -> str:
    """The first :data:`FUZZY_LEAD_TOKENS` tokens of a normalised text."""
    if key.count(" ") < FUZZY_LEAD_TOKENS:
        return key
    return " ".join(key.split(" ", FUZZY_LEAD_TOKENS)[:FUZZY_LEAD_TOKENS])


def _compact(values: Iterable[str]) -> tuple[str, ...]:
    """A sorted tuple of distinct values, sharing one empty tuple."""
    return tuple(sorted(set(values))) or _EMPTY


def _margin(items: np.ndarray, values: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Each value minus the largest value of the *other* ``core`` pairs of the same item
    (0 when there is none)."""
    if not len(values):
        return values
    n_items = int(items.max()) + 1
    best = np.full(n_items, -np.inf)
    second = np.full(n_items, -np.inf)
    best_at = np.full(n_items, -1, dtype=np.int64)
    positions = np.flatnonzero(core)
    order = positions[np.lexsort((-values[positions], items[positions]))]
    first = np.r_[True, items[order][1:] != items[order][:-1]] if len(order) else order
    leaders = order[first]
    best[items[leaders]] = values[leaders]
    best_at[items[leaders]] = leaders
    rest = order[~first]
    if len(rest):
        runner = rest[np.r_[True, items[rest][1:] != items[rest][:-1]]]
        second[items[runner]] = values[runner]
    is_best = best_at[items] == np.arange(len(values))
    other = np.where(is_best, second[items], best[items])
    return np.where(np.isfinite(other), values - other, 0.0)


def _coverage(weighted: sp.csr_matrix, present: sp.csr_matrix) -> np.ndarray:
    """Share of row n of ``weighted`` (L2-normalised) whose words row n of ``present`` has
    too: the sum of its squared weights over the shared words."""
    if not weighted.shape[0]:
        return np.zeros(0)
    squared = weighted.copy()
    squared.data = squared.data**2
    flags = present.copy()
    flags.data = np.ones_like(flags.data)
    return np.minimum(rowwise_cosine(squared, flags), 1.0)


def _shortened_pairs(
    left: tuple[list[str], list[str], np.ndarray], right: tuple[list[str], list[str], np.ndarray]
) -> np.ndarray:
    """Positions of the pairs where either side's lead is shorter than its text.

    ``left`` and ``right`` are ``(leads, keys, text of each pair)``: the distinct texts
    of one side of the pairs and, per pair, the position of its text.
    """
    if not len(left[2]):
        return np.zeros(0, dtype=np.int64)
    shortened = [
        np.array([len(a) < len(k) for a, k in zip(leads, keys, strict=True)], dtype=bool)
        for leads, keys, _ in (left, right)
    ]
    return np.flatnonzero(shortened[0][left[2]] | shortened[1][right[2]])


def _lead_vectors(
    vectoriser: CharNgramVectoriser | WordVectoriser,
    sides: tuple[tuple[list[str], list[str], np.ndarray], ...],
    cut: np.ndarray,
) -> list[sp.csr_matrix]:
    """Both sides' lead vectors of the pairs at positions ``cut``, aligned row by row
    (each distinct lead vectorised once)."""
    vectors = []
    for leads, _, of_pair in sides:
        needed = np.unique(of_pair[cut])
        matrix = vectoriser.transform([leads[j] for j in needed.tolist()])
        vectors.append(gather_rows(matrix, np.searchsorted(needed, of_pair[cut])))
    return vectors


def _pairwise(left: list[str], right: list[str], scorer: Any) -> np.ndarray:
    """``scorer(left[n], right[n]) / 100`` for every n, in RapidFuzz's C++ loop."""
    if not left:
        return np.zeros(0)
    scores = process.cpdist(left, right, scorer=scorer, processor=None, workers=-1)
    return scores.astype(np.float64) / 100.0
