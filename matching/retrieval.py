"""Candidate retrieval: the top-k catalog rows per query by sparse n-gram dot product.

Frequent n-grams (in more than ``max_postings`` catalog records, see
:func:`postings_cap`) carry little weight but most of the cost of a sparse
product, so queries leave them out; a query keeps at least its
:data:`MIN_QUERY_TERMS` rarest n-grams so that short, common titles still
retrieve something. The retrieval score is therefore a lower bound of the
cosine; callers re-score the candidates exactly.

The product and the per-query top-k run in sparse_dot_topn (C++, several
threads, without the GIL) when it is installed, in SciPy and NumPy otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from matching.vectors import freeze

try:
    from sparse_dot_topn import sp_matmul_topn
    from sparse_dot_topn.unchecked import sp_matmul_topn_mt
except ImportError:  # optional accelerator: SciPy gives the same candidates, slower
    sp_matmul_topn = sp_matmul_topn_mt = None

PRODUCT_THREADS = os.cpu_count() or 1
"""Threads sparse_dot_topn uses for one retrieval product."""

MIN_POSTINGS_CAP = 250
MAX_POSTINGS_CAP = 800
POSTINGS_CAP_SHARE = 0.008
"""Bounds and catalog share of the longest posting list used for retrieval."""


def postings_cap(n_records: int) -> int:
    """Longest posting list (catalog records sharing one n-gram) used for retrieval.

    Grows with the catalog, within bounds: large catalogs have large families of
    near-identical records whose distinguishing n-grams are not rare.

    >>> postings_cap(1_000), postings_cap(50_000), postings_cap(1_000_000)
    (250, 400, 800)
    """
    share = int(POSTINGS_CAP_SHARE * n_records)
    return max(MIN_POSTINGS_CAP, min(MAX_POSTINGS_CAP, share))


MIN_QUERY_TERMS = 12
"""A query keeps at least this many of its rarest n-grams, however common.

Four were too few at 100k records: families of near-identical records make most
n-grams common, and the four rarest of a query with a typo are often the
typo's own n-grams, which retrieve unrelated records (synthetic hit@1 0.946;
0.964 with twelve, for about 10% more matching time).
"""


@dataclass(frozen=True, slots=True, eq=False)
class NgramRetriever:
    """Top-k retrieval over the rows of an L2-normalised catalog matrix.

    >>> m = sp.csr_matrix(np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32))
    >>> r = NgramRetriever.build(m)
    >>> r.top_k(sp.csr_matrix(np.array([[0.0, 1.0]], dtype=np.float32)), k=1)
    [([1], [0.800000011920929])]
    """

    postings: sp.csr_matrix  # terms x catalog rows: the catalog matrix transposed
    document_frequency: np.ndarray
    max_postings: int
    product: sp.csr_matrix | None = None  # postings on writable arrays, see build
    telling_terms: np.ndarray | None = None  # bool per term, see build
    row_of_column: np.ndarray | None = None  # the matrix row of each postings column, see build

    @classmethod
    def build(
        cls,
        matrix: sp.csr_matrix,
        *,
        max_postings: int | None = None,
        telling_terms: np.ndarray | None = None,
        locality: np.ndarray | None = None,
    ) -> NgramRetriever:
        """Index the rows of ``matrix``; ``max_postings`` defaults to :func:`postings_cap`.

        ``telling_terms`` (a bool per column) marks the terms that tell look-alike
        records apart (see :func:`~matching.vectors.digit_ngrams`): a dense family's
        widened query keeps them however common they are.

        ``locality`` (a permutation of the rows, such as the order of their sorted
        texts) puts rows that share n-grams side by side in the posting lists: the
        product then adds into a few neighbouring stretches of its accumulator instead
        of all over it. Results are in ``matrix``'s rows either way; only ties at the
        k-th score may fall otherwise. At 1M synthetic records, sorted texts made the
        product 3.6 times cheaper (long posting lists of common n-grams, cache misses)."""
        if max_postings is None:
            max_postings = postings_cap(matrix.shape[0])
        if telling_terms is not None:
            telling_terms = np.asarray(telling_terms, dtype=bool)
            telling_terms.flags.writeable = False
        df = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.int32)
        # Frequent terms keep their full posting lists: only queries made mostly of
        # common n-grams reach them (see _kept_terms), and one product serves every query.
        postings = matrix.T.tocsr()
        row_of_column = None
        if locality is not None:
            row_of_column = np.array(locality, dtype=postings.indices.dtype)
            column_of_row = np.empty_like(row_of_column)
            column_of_row[row_of_column] = np.arange(len(row_of_column), dtype=row_of_column.dtype)
            postings.indices = column_of_row[postings.indices]
            postings.has_sorted_indices = False
            row_of_column.flags.writeable = False
        # sparse_dot_topn's bindings refuse read-only arrays although they only read
        # them. Rather than copy the postings for every product, keep writable arrays
        # that only the product sees; everyone else sees read-only views of them.
        postings = freeze(postings)
        arrays = [postings.data, postings.indices, postings.indptr]
        for array in arrays:
            array.flags.writeable = True  # it owns its memory: freeze only locked it
        product = sp.csr_matrix(tuple(arrays), shape=postings.shape)
        postings.data, postings.indices, postings.indptr = (a.view() for a in arrays)
        for array in (postings.data, postings.indices, postings.indptr):
            array.flags.writeable = False
        return cls(postings, df, max_postings, product, telling_terms, row_of_column)

    @property
    def nbytes(self) -> int:
        """Bytes held by the retriever."""
        p = self.postings
        extras = sum(a.nbytes for a in (self.telling_terms, self.row_of_column) if a is not None)
        return int(
            self.document_frequency.nbytes
            + p.data.nbytes
            + p.indices.nbytes
            + p.indptr.nbytes
            + extras
        )

    def top_k(self, queries: sp.csr_matrix, *, k: int) -> list[tuple[list[int], list[float]]]:
        """For each query row, up to ``k`` ``(rows, scores)`` with the highest retrieval score."""
        top = self.top_k_matrix(queries, k=k)
        out: list[tuple[list[int], list[float]]] = []
        for i in range(top.shape[0]):
            lo, hi = top.indptr[i], top.indptr[i + 1]
            cols, values = top.indices[lo:hi], top.data[lo:hi]
            order = np.lexsort((cols, -values))
            out.append((cols[order].tolist(), values[order].tolist()))
        return out

    def top_k_matrix(
        self,
        queries: sp.csr_matrix,
        *,
        k: int,
        min_terms: int = MIN_QUERY_TERMS,
        dense_k: int | None = None,
        dense_share: float | None = None,
    ) -> sp.csr_matrix:
        """Queries x catalog rows holding each query's (up to) ``k`` best retrieval scores.

        ``dense_k`` (> ``k``): a query whose ``k``-th score is still within
        ``dense_share`` (default :data:`DENSE_SCORE_SHARE`) of its best — a dense family of look-alikes, more of
        them than ``k`` — gets its ``dense_k`` best instead, so that the right one of a
        large family is not cut off by near-ties; that widened query also keeps its
        telling terms (see :meth:`build`) however common: they are what sets the
        right one apart from its siblings, and in a large catalog every number's
        n-grams are common. Ties at the k-th score are broken arbitrarily. Uses
        sparse_dot_topn's multi-threaded product when it is installed, SciPy otherwise.
        """
        postings = self.postings if self.product is None else self.product
        kept = self._kept_terms(queries, min_terms)
        top = _product_top_k(kept, postings, k)
        if dense_k is not None and dense_k > k:
            dense = _dense_rows(top, k, DENSE_SCORE_SHARE if dense_share is None else dense_share)
            if len(dense):
                if self.telling_terms is not None:
                    kept = self._kept_terms(queries[dense], min_terms, also=self.telling_terms)
                else:
                    kept = kept[dense]
                top = _replace_rows(top, dense, _product_top_k(kept, postings, dense_k))
        if self.row_of_column is not None:
            top.indices = self.row_of_column[top.indices]
            top.has_sorted_indices = False
        return top

    def _kept_terms(
        self, queries: sp.csr_matrix, min_terms: int, *, also: np.ndarray | None = None
    ) -> sp.csr_matrix:
        """Queries without their common terms, except the few rarest a short query must
        keep and those ``also`` marks."""
        df = self.document_frequency[queries.indices]
        keep = df <= self.max_postings
        if also is not None:
            keep |= also[queries.indices]
        lengths = np.diff(queries.indptr)
        row_of_entry = np.repeat(np.arange(queries.shape[0]), lengths)
        rare_counts = np.bincount(row_of_entry[keep], minlength=queries.shape[0])
        needy = np.flatnonzero(rare_counts < np.minimum(min_terms, lengths))
        if len(needy):
            # Rank each needy query's common terms by document frequency (ties: position)
            # and keep the first min_terms - rare_count of them.
            is_needy = np.zeros(queries.shape[0], dtype=bool)
            is_needy[needy] = True
            entries = np.flatnonzero(is_needy[row_of_entry] & ~keep)
            rows = row_of_entry[entries]
            order = np.lexsort((entries, df[entries], rows))
            entries, rows = entries[order], rows[order]
            rank = np.arange(len(entries)) - np.searchsorted(rows, rows)
            keep[entries[rank < min_terms - rare_counts[rows]]] = True
        return sp.csr_matrix(
            (queries.data[keep], queries.indices[keep], _indptr_after_mask(queries, keep)),
            shape=queries.shape,
        )


def locality_order(texts: Sequence[str]) -> np.ndarray:
    """The positions of ``texts`` in the order of the sorted texts: look-alikes (which
    share most of their n-grams) end up side by side. See :meth:`NgramRetriever.build`.

    >>> locality_order(["sony w130", "canon", "sony w120"]).tolist()
    [1, 2, 0]
    """
    return np.array(sorted(range(len(texts)), key=texts.__getitem__), dtype=np.int64)


DENSE_SCORE_SHARE = 0.9
"""A query's k-th retrieval score at least this share of its best marks a dense family."""


def _dense_rows(top: sp.csr_matrix, k: int, share: float) -> np.ndarray:
    """Rows of ``top`` holding ``k`` entries whose smallest is at least ``share`` of their
    largest."""
    lengths = np.diff(top.indptr)
    full = np.flatnonzero(lengths >= k)
    if not len(full):
        return full
    best = np.maximum.reduceat(top.data, top.indptr[full])
    worst = np.minimum.reduceat(top.data, top.indptr[full])
    return full[worst >= share * best]


def _replace_rows(top: sp.csr_matrix, rows: np.ndarray, wide: sp.csr_matrix) -> sp.csr_matrix:
    """``top`` with its ``rows`` replaced by the rows of ``wide``, in order."""
    lengths = np.diff(top.indptr).astype(np.int64)
    wide_lengths = np.diff(wide.indptr).astype(np.int64)
    keep = np.ones(top.shape[0], dtype=bool)
    keep[rows] = False
    new_lengths = lengths.copy()
    new_lengths[rows] = wide_lengths
    indptr = np.concatenate([[0], np.cumsum(new_lengths)])
    indices = np.empty(indptr[-1], dtype=top.indices.dtype)
    data = np.empty(indptr[-1], dtype=top.data.dtype)
    kept_rows = np.flatnonzero(keep)
    old_mask = np.repeat(keep, lengths)
    new_pos = np.concatenate(
        [np.arange(indptr[r], indptr[r + 1]) for r in kept_rows] or [np.zeros(0, dtype=np.int64)]
    )
    indices[new_pos] = top.indices[old_mask]
    data[new_pos] = top.data[old_mask]
    wide_pos = np.concatenate([np.arange(indptr[r], indptr[r + 1]) for r in rows])
    indices[wide_pos] = wide.indices
    data[wide_pos] = wide.data
    return sp.csr_matrix((data, indices, indptr), shape=top.shape)


def _product_top_k(queries: sp.csr_matrix, postings: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest entries per row of ``queries @ postings``."""
    if sp_matmul_topn is None:
        return _row_top_k((queries @ postings).tocsr(), k)
    # sparse_dot_topn runs the product and the per-row selection in C++, on
    # several threads and without the GIL. Its checked entry point copies both
    # matrices' index arrays on every call (``astype`` copies even to the same
    # dtype): at 1M records that is the whole catalog's postings, 220 MB, per
    # product, a sixth of the peers build. Matrices it can take as they are go to
    # the unchecked one.
    index_type = np.dtype(np.int32)
    as_they_are = (
        queries.nnz
        and postings.nnz
        and queries.data.dtype == postings.data.dtype == np.float32
        and all(a.dtype == index_type for m in (queries, postings) for a in (m.indices, m.indptr))
    )
    if not as_they_are:
        return sp_matmul_topn(queries, postings, top_n=k, n_threads=PRODUCT_THREADS)
    return sp_matmul_topn_mt(
        queries,
        postings,
        top_n=min(k, postings.shape[1]),
        sort=False,
        threshold=None,
        n_threads=PRODUCT_THREADS,
    )


def _row_top_k(scores: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``scores`` keeping only the ``k`` largest entries of each row (ties: lower column)."""
    lengths = np.diff(scores.indptr)
    if not len(lengths) or lengths.max(initial=0) <= k:
        return scores
    row_of_entry = np.repeat(np.arange(scores.shape[0]), lengths)
    order = np.lexsort((scores.indices, -scores.data, row_of_entry))
    rank = np.arange(scores.nnz) - scores.indptr[row_of_entry[order]]
    keep = np.zeros(scores.nnz, dtype=bool)
    keep[order[rank < k]] = True
    return sp.csr_matrix(
        (scores.data[keep], scores.indices[keep], _indptr_after_mask(scores, keep)),
        shape=scores.shape,
    )


def _indptr_after_mask(matrix: sp.csr_matrix, keep: np.ndarray) -> np.ndarray:
    """Row pointers of ``matrix`` after dropping the entries where ``keep`` is False."""
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return kept_before[matrix.indptr].astype(matrix.indptr.dtype)
