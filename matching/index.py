"""The catalog index: built once per catalog version, then matched against many chunks.

A :class:`CatalogIndex` is immutable after :meth:`CatalogIndex.build`; ``match``
and ``candidates`` only read it, so one index may serve several threads at once.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

import scipy.sparse as sp

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
    code_agreement,
    combine_signals,
    describe_signals,
    number_agreement,
    partial_similarity,
    token_set_similarity,
    token_sort_similarity,
)
from matching.vectors import CharNgramVectoriser, WordVectoriser, rowwise_cosine

DEFAULT_THRESHOLD = 0.6
"""Score (0..1) at or above which ``match`` accepts a fuzzy or code pair."""

DEFAULT_CANDIDATES = 10
"""Catalog records retrieved per item by the n-gram cosine before re-ranking."""

CODE_CONFIRM_MIN_SIMILARITY = 0.3
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
        """Score retrieved candidates for each text; return the ``keep`` best and the code row."""
        assert self._char is not None and self._char_matrix is not None
        assert self._retriever is not None
        assert self._words is not None and self._word_matrix is not None
        item_codes = [extract_codes(t) for t in texts]
        unique_rows = [self._unique_code_row(c) for c in item_codes]
        item_chars = self._char.transform(keys)
        pair_items: list[int] = []
        pair_rows: list[int] = []
        retrieved = self._retriever.top_k(item_chars, k=max(keep, DEFAULT_CANDIDATES))
        for i, (rows, _) in enumerate(retrieved):
            forced = unique_rows[i]
            if forced is not None and forced not in rows:
                rows = [*rows, forced]
            pair_rows.extend(rows)
            pair_items.extend([i] * len(rows))
        pair_char = rowwise_cosine(item_chars[pair_items], self._char_matrix[pair_rows])
        item_words = self._words.transform(keys)
        word_cos = rowwise_cosine(item_words[pair_items], self._word_matrix[pair_rows])
        item_numbers = [extract_numbers(k) for k in keys]
        signal_codes = [
            frozenset(c for c in codes if self._code_frequency.get(c, 0) <= MAX_SIGNAL_CODE_FREQUENCY)
            for codes in item_codes
        ]
        per_item: list[list[tuple[int, float, PairSignals]]] = [[] for _ in texts]
        for n, (i, row) in enumerate(zip(pair_items, pair_rows, strict=True)):
            a, b = keys[i], self._keys[row]
            signals = PairSignals(
                char_cosine=min(1.0, float(pair_char[n])),
                word_cosine=min(1.0, float(word_cos[n])),
                token_set=token_set_similarity(a, b),
                token_sort=token_sort_similarity(a, b),
                partial=partial_similarity(a, b),
                code_agreement=code_agreement(signal_codes[i], self._codes[row]),
                number_agreement=number_agreement(item_numbers[i], self._numbers[row]),
            )
            per_item[i].append((row, combine_signals(signals), signals))
        out = []
        for i, scored in enumerate(per_item):
            scored.sort(key=lambda entry: (-entry[1], entry[0]))
            code_row = unique_rows[i]
            if code_row is not None:
                confirmed = next((e for e in scored if e[0] == code_row), None)
                if confirmed and confirmed[2].text_similarity >= CODE_CONFIRM_MIN_SIMILARITY:
                    scored.remove(confirmed)
                    scored.insert(0, confirmed)
                else:
                    code_row = None
            out.append((scored[:keep], code_row))
        return out
