"""The catalog index: built once per catalog version, then matched against many chunks.

A :class:`CatalogIndex` is immutable after :meth:`CatalogIndex.build`; ``match``
and ``candidates`` only read it, so one index may serve several threads at once.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from rapidfuzz import fuzz, process

from matching.codes import extract_codes, extract_numbers
from matching.exceptions import (
    DuplicateCatalogIdError,
    InvalidArgumentError,
    InvalidThresholdError,
)
from matching.normalise import normalise_text
from matching.results import METHOD_CODE, METHOD_EXACT, METHOD_FUZZY, MatchResult
from matching.retrieval import NgramRetriever
from matching.scoring import (
    PairSignals,
    SignalTable,
    code_agreement,
    describe_signals,
    number_agreement,
)
from matching.vectors import CharNgramVectoriser, WordVectoriser, rowwise_cosine

DEFAULT_THRESHOLD = 0.6
"""Score (0..1) at or above which ``match`` accepts a fuzzy or code pair."""

DEFAULT_CANDIDATES = 10
"""Catalog records retrieved per item by the n-gram cosine before re-ranking."""

RERANK_CANDIDATES = 5
"""Retrieved records per item scored with every signal (the best by n-gram and word cosine)."""

CODE_CONFIRM_MIN_SIMILARITY = 0.4
"""Text similarity a unique model-code hit needs so a code collision is not accepted."""

MAX_SIGNAL_CODE_FREQUENCY = 3
"""A code in more catalog records than this is a family name, not evidence."""

# Items vectorised and multiplied per sparse product; bounds peak memory per call.
_BATCH_ROWS = 1024


class CatalogIndex:
    """An immutable, thread-safe index over ``(catalog_id, text)`` records.

    >>> index = CatalogIndex.build([("b1", "Sony Cyber-shot DSC-W120 Black"),
    ...                             ("b2", "Canon PowerShot SD1100 IS")])
    >>> [(r.item_id, r.catalog_id, r.method) for r in index.match([("a1", "sony dsc-w120")])]
    [('a1', 'b1', 'code')]
    """

    __slots__ = (
        "_ids",
        "_keys",
        "_exact_rows",
        "_codes",
        "_numbers",
        "_code_rows",
        "_code_frequency",
        "_char",
        "_char_matrix",
        "_retriever",
        "_words",
        "_word_matrix",
    )

    def __init__(
        self,
        *,
        ids: list[str],
        keys: list[str],
        exact_rows: dict[str, int],
        codes: list[frozenset[str]],
        numbers: list[frozenset[str]],
        code_rows: dict[str, int],
        code_frequency: dict[str, int],
        char: CharNgramVectoriser | None,
        char_matrix: sp.csr_matrix | None,
        retriever: NgramRetriever | None,
        words: WordVectoriser | None,
        word_matrix: sp.csr_matrix | None,
    ) -> None:
        self._ids = ids
        self._keys = keys
        self._exact_rows = exact_rows
        self._codes = codes
        self._numbers = numbers
        self._code_rows = code_rows
        self._code_frequency = code_frequency
        self._char = char
        self._char_matrix = char_matrix
        self._retriever = retriever
        self._words = words
        self._word_matrix = word_matrix

    @classmethod
    def build(cls, records: Sequence[tuple[str, str]]) -> CatalogIndex:
        """Index ``(catalog_id, text)`` records.

        Raises :class:`~matching.exceptions.DuplicateCatalogIdError` if an id repeats.
        """
        ids = [str(record_id) for record_id, _ in records]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i, n in Counter(ids).items() if n > 1)
            raise DuplicateCatalogIdError(f"catalog id {duplicate!r} occurs more than once")
        keys = [normalise_text(text) for _, text in records]
        exact_rows: dict[str, int] = {}
        for row, key in enumerate(keys):
            if key:
                exact_rows.setdefault(key, row)
        all_codes = [extract_codes(text) for _, text in records]
        frequency: Counter[str] = Counter(code for codes in all_codes for code in codes)
        code_rows = {}
        for row, codes in enumerate(all_codes):
            for code in codes:
                if frequency[code] == 1:
                    code_rows[code] = row
        signal_frequency = {c: n for c, n in frequency.items() if n <= MAX_SIGNAL_CODE_FREQUENCY}
        codes = [frozenset(c for c in cs if c in signal_frequency) for cs in all_codes]
        numbers = [extract_numbers(key) for key in keys]
        char = char_matrix = retriever = words = word_matrix = None
        if records:
            char, char_matrix = CharNgramVectoriser.fit(keys)
            retriever = NgramRetriever.build(char_matrix)
            words, word_matrix = WordVectoriser.fit(keys)
        return cls(
            ids=ids,
            keys=keys,
            exact_rows=exact_rows,
            codes=codes,
            numbers=numbers,
            code_rows=code_rows,
            code_frequency=signal_frequency,
            char=char,
            char_matrix=char_matrix,
            retriever=retriever,
            words=words,
            word_matrix=word_matrix,
        )

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"<CatalogIndex records={len(self)} nbytes={self.nbytes}>"

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the index, in bytes."""
        total = 0
        for matrix in (self._char_matrix, self._word_matrix):
            if matrix is not None:
                total += matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
        for vectoriser in (self._char, self._words, self._retriever):
            if vectoriser is not None:
                total += vectoriser.nbytes
        total += sum(sys.getsizeof(s) for s in self._ids)
        total += sum(sys.getsizeof(s) for s in self._keys)
        total += 3 * sys.getsizeof(self._ids)  # the three per-row lists
        # Dict entries (~100 bytes each incl. key) and small per-row frozensets.
        total += 100 * (len(self._exact_rows) + len(self._code_rows) + len(self._code_frequency))
        total += sum(sys.getsizeof(c) for c in self._codes if c)
        total += sum(sys.getsizeof(n) for n in self._numbers if n)
        return total

    # -- matching ---------------------------------------------------------------

    def match(
        self, items: Sequence[tuple[str, str]], *, threshold: float = DEFAULT_THRESHOLD
    ) -> list[MatchResult]:
        """Return the best catalog record for each item scoring at least ``threshold``.

        Stages run in order, each on the items the earlier ones left: ``exact``
        (normalised text equal), ``code`` (a model code unique in the catalog,
        confirmed by text similarity), ``fuzzy`` (n-gram retrieval, re-ranked).
        Unmatched items are omitted; results keep input order.
        """
        if not 0.0 <= threshold <= 1.0:
            raise InvalidThresholdError(f"threshold must be within [0, 1], got {threshold!r}")
        if not self._ids or not items:
            return []
        results: list[MatchResult | None] = [None] * len(items)
        pending: list[int] = []
        keys = [normalise_text(text) for _, text in items]
        for position, key in enumerate(keys):
            row = self._exact_rows.get(key) if key else None
            if row is not None:
                results[position] = MatchResult(
                    str(items[position][0]),
                    self._ids[row],
                    1.0,
                    METHOD_EXACT,
                    "normalised text identical",
                )
            else:
                pending.append(position)
        for start in range(0, len(pending), _BATCH_ROWS):
            batch = pending[start : start + _BATCH_ROWS]
            ranked = self._rank([items[p][1] for p in batch], [keys[p] for p in batch], 1)
            for position, (best, unique_row) in zip(batch, ranked, strict=True):
                if not best:
                    continue
                row, score, signals = best[0]
                if score < threshold:
                    continue
                if row == unique_row:
                    method = METHOD_CODE
                    reason = "model code unique in catalog matched; " + describe_signals(signals)
                else:
                    method = METHOD_FUZZY
                    reason = describe_signals(signals)
                results[position] = MatchResult(
                    str(items[position][0]), self._ids[row], score, method, reason
                )
        return [r for r in results if r is not None]

    def candidates(self, text: str, *, k: int = DEFAULT_CANDIDATES) -> list[tuple[str, float]]:
        """The ``k`` best catalog records for ``text`` as ``(catalog_id, score)``, best first.

        >>> index = CatalogIndex.build([("b1", "Sony DSC-W120"), ("b2", "Sony DSC-W130")])
        >>> [cid for cid, _ in index.candidates("Sony DSC W120", k=2)]
        ['b1', 'b2']
        """
        if k < 1:
            raise InvalidArgumentError(f"k must be at least 1, got {k!r}")
        if not self._ids:
            return []
        key = normalise_text(text)
        exact = self._exact_rows.get(key) if key else None
        ranked = self._rank([text], [key], max(k, DEFAULT_CANDIDATES))[0][0]
        out: list[tuple[str, float]] = []
        if exact is not None:
            out.append((self._ids[exact], 1.0))
        out.extend((self._ids[row], score) for row, score, _ in ranked if row != exact)
        return out[:k]

    # -- internals ---------------------------------------------------------------

    def _unique_code_row(self, codes: frozenset[str]) -> int | None:
        rows = {self._code_rows[c] for c in codes if c in self._code_rows}
        return rows.pop() if len(rows) == 1 else None

    def _rank(
        self, texts: list[str], keys: list[str], keep: int
    ) -> list[tuple[list[tuple[int, float, PairSignals]], int | None]]:
        """Score retrieved candidates per text; return the ``keep`` best and the code row.

        When a model code of the text is unique in the catalog and its record is
        similar enough, that record is put first and returned as the code row.
        """
        assert self._char is not None and self._char_matrix is not None
        assert self._retriever is not None
        assert self._words is not None and self._word_matrix is not None
        item_codes = [extract_codes(t) for t in texts]
        unique_rows = [self._unique_code_row(c) for c in item_codes]
        item_chars = self._char.transform(keys)
        items_arr, rows_arr = self._shortlist(
            keys, item_chars, unique_rows, max(keep, RERANK_CANDIDATES)
        )
        if not len(rows_arr):
            return [([], None) for _ in texts]
        pair_rows = rows_arr.tolist()
        item_numbers = [extract_numbers(k) for k in keys]
        signal_codes = [
            frozenset(c for c in codes if self._code_frequency.get(c, 0) <= MAX_SIGNAL_CODE_FREQUENCY)
            for codes in item_codes
        ]
        signals = self._signals(keys, items_arr, rows_arr, signal_codes, item_numbers, item_chars)
        scores = signals.scores()
        similarity = signals.text_similarity()
        order = np.lexsort((rows_arr, -scores, items_arr))
        out: list[tuple[list[tuple[int, float, PairSignals]], int | None]] = []
        bounds = np.searchsorted(items_arr[order], np.arange(len(texts) + 1))
        for i in range(len(texts)):
            positions = order[bounds[i] : bounds[i + 1]].tolist()
            code_row = unique_rows[i]
            if code_row is not None:
                at = next(p for p in positions if pair_rows[p] == code_row)
                if similarity[at] >= CODE_CONFIRM_MIN_SIMILARITY:
                    positions.remove(at)
                    positions.insert(0, at)
                else:
                    code_row = None
            ranked = [(pair_rows[p], float(scores[p]), signals.pair(p)) for p in positions[:keep]]
            out.append((ranked, code_row))
        return out

    def _shortlist(
        self,
        keys: list[str],
        item_chars: sp.csr_matrix,
        unique_rows: list[int | None],
        size: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Retrieve candidates and keep the ``size`` best per item by n-gram and word cosine.

        The record of an item's unique model code is always kept. Returns parallel
        ``(item positions, catalog rows)`` arrays grouped by item.
        """
        assert self._retriever is not None and self._char_matrix is not None
        assert self._words is not None and self._word_matrix is not None
        pair_items: list[int] = []
        pair_rows: list[int] = []
        for i, (rows, _) in enumerate(self._retriever.top_k(item_chars, k=DEFAULT_CANDIDATES)):
            forced = unique_rows[i]
            if forced is not None and forced not in rows:
                rows = [*rows, forced]
            pair_rows.extend(rows)
            pair_items.extend([i] * len(rows))
        items = np.asarray(pair_items, dtype=np.int64)
        rows_arr = np.asarray(pair_rows, dtype=np.int64)
        if not len(rows_arr):
            return items, rows_arr
        char_cos = rowwise_cosine(item_chars[items], self._char_matrix[rows_arr])
        item_words = self._words.transform(keys)
        word_cos = rowwise_cosine(item_words[items], self._word_matrix[rows_arr])
        prescore = char_cos + word_cos
        forced_mask = np.zeros(len(rows_arr), dtype=bool)
        for n, (i, r) in enumerate(zip(pair_items, pair_rows, strict=True)):
            forced_mask[n] = unique_rows[i] == r
        prescore[forced_mask] = np.inf
        order = np.lexsort((rows_arr, -prescore, items))
        sorted_items = items[order]
        first = np.searchsorted(sorted_items, sorted_items)
        rank = np.arange(len(order)) - first
        chosen = np.sort(order[rank < size])
        return items[chosen], rows_arr[chosen]

    def _signals(
        self,
        keys: list[str],
        items: np.ndarray,
        rows: np.ndarray,
        item_codes: list[frozenset[str]],
        item_numbers: list[frozenset[str]],
        item_chars: sp.csr_matrix,
    ) -> SignalTable:
        assert self._char_matrix is not None
        assert self._words is not None and self._word_matrix is not None
        char_cos = rowwise_cosine(item_chars[items], self._char_matrix[rows])
        item_words = self._words.transform(keys)
        word_cos = rowwise_cosine(item_words[items], self._word_matrix[rows])
        left = [keys[i] for i in items.tolist()]
        right = [self._keys[r] for r in rows.tolist()]
        code = np.zeros(len(rows), dtype=np.int8)
        numbers = np.ones(len(rows))
        for n, (i, r) in enumerate(zip(items.tolist(), rows.tolist(), strict=True)):
            if item_codes[i] and self._codes[r]:
                code[n] = code_agreement(item_codes[i], self._codes[r])
            if item_numbers[i] and self._numbers[r]:
                numbers[n] = number_agreement(item_numbers[i], self._numbers[r])
        return SignalTable(
            char_cosine=np.minimum(char_cos, 1.0),
            word_cosine=np.minimum(word_cos, 1.0),
            token_set=_pairwise(left, right, fuzz.token_set_ratio),
            token_sort=_pairwise(left, right, fuzz.token_sort_ratio),
            partial=_pairwise(left, right, fuzz.partial_ratio),
            code_agreement=code,
            number_agreement=numbers,
        )


def _pairwise(left: list[str], right: list[str], scorer: Any) -> np.ndarray:
    """``scorer(left[n], right[n]) / 100`` for every n, computed in RapidFuzz's C++ loop."""
    return process.cpdist(left, right, scorer=scorer, processor=None, workers=1).astype(
        np.float64
    ) / 100.0
