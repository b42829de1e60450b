"""Candidate retrieval: the top-k catalog rows per query by sparse n-gram dot product.

Frequent n-grams (in more than ``max_postings`` catalog records, see
:func:`postings_cap`) carry little weight but most of the cost of a sparse
product, so they are left out of the retrieval matrix; a query keeps at least its ``min_query_terms`` rarest n-grams
so that short, common titles still retrieve something. The retrieval score is
therefore a lower bound of the cosine; callers re-score the candidates exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from matching.vectors import freeze

try:
    from sparse_dot_topn import sp_matmul_topn
except ImportError:  # optional accelerator: SciPy gives the same candidates, slower
    sp_matmul_topn = None

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


MIN_QUERY_TERMS = 4
"""A query keeps at least this many of its rarest n-grams, however common."""


@dataclass(frozen=True, slots=True, eq=False)
class NgramRetriever:
    """Top-k retrieval over the rows of an L2-normalised catalog matrix.

    >>> m = sp.csr_matrix(np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32))
    >>> r = NgramRetriever.build(m)
    >>> r.top_k(sp.csr_matrix(np.array([[0.0, 1.0]], dtype=np.float32)), k=1)
    [([1], [0.800000011920929])]
    """

    matrix: sp.csr_matrix  # catalog rows x terms, shared with the caller (not copied)
    postings: sp.csr_matrix  # terms x catalog rows, frequent terms emptied
    document_frequency: np.ndarray
    max_postings: int

    @classmethod
    def build(cls, matrix: sp.csr_matrix, *, max_postings: int | None = None) -> NgramRetriever:
        """Index the rows of ``matrix``; ``max_postings`` defaults to :func:`postings_cap`."""
        if max_postings is None:
            max_postings = postings_cap(matrix.shape[0])
        df = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.int32)
        frequent = df > max_postings
        keep = ~frequent[matrix.indices]
        rare = sp.csr_matrix(
            (matrix.data[keep], matrix.indices[keep], _indptr_after_mask(matrix, keep)),
            shape=matrix.shape,
        )
        return cls(matrix, freeze(rare.T.tocsr()), df, max_postings)

    @property
    def nbytes(self) -> int:
        """Bytes held beyond the shared catalog matrix."""
        p = self.postings
        return int(
            self.document_frequency.nbytes + p.data.nbytes + p.indices.nbytes + p.indptr.nbytes
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

    def top_k_matrix(self, queries: sp.csr_matrix, *, k: int) -> sp.csr_matrix:
        """Queries x catalog rows holding each query's (up to) ``k`` best retrieval scores.

        Ties at the k-th score are broken arbitrarily. Uses sparse_dot_topn's
        multi-threaded product when it is installed, SciPy otherwise.
        """
        rare_part, common_part = self._split(queries)
        top = _product_top_k(rare_part, self.postings, k)
        rows_with_common = np.flatnonzero(np.diff(common_part.indptr))
        if not len(rows_with_common):
            return top
        # Rare: titles made only of common n-grams. One pass over the catalog for them all.
        extra = (self.matrix @ common_part[rows_with_common].T).T.tocsr()
        combined = (rare_part[rows_with_common] @ self.postings + extra).tocsr()
        patch = _row_top_k(combined, k)
        n_queries = queries.shape[0]
        untouched = np.ones(n_queries, dtype=np.float32)
        untouched[rows_with_common] = 0.0
        place = sp.csr_matrix(
            (
                np.ones(len(rows_with_common), dtype=np.float32),
                (rows_with_common, np.arange(len(rows_with_common))),
            ),
            shape=(n_queries, len(rows_with_common)),
        )
        merged = sp.diags(untouched, format="csr") @ top + place @ patch
        merged.eliminate_zeros()
        return merged.tocsr()

    def _split(self, queries: sp.csr_matrix) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Split queries into their rare terms and the few common terms a query must keep."""
        df = self.document_frequency[queries.indices]
        rare = df <= self.max_postings
        lengths = np.diff(queries.indptr)
        row_of_entry = np.repeat(np.arange(queries.shape[0]), lengths)
        rare_counts = np.bincount(row_of_entry[rare], minlength=queries.shape[0])
        keep_common = np.zeros(queries.nnz, dtype=bool)
        for row in np.flatnonzero(rare_counts < np.minimum(MIN_QUERY_TERMS, lengths)):
            lo, hi = queries.indptr[row], queries.indptr[row + 1]
            need = MIN_QUERY_TERMS - int(rare_counts[row])
            common_positions = lo + np.flatnonzero(~rare[lo:hi])
            rarest = common_positions[np.argsort(df[common_positions], kind="stable")[:need]]
            keep_common[rarest] = True
        rare_part = sp.csr_matrix(
            (queries.data[rare], queries.indices[rare], _indptr_after_mask(queries, rare)),
            shape=queries.shape,
        )
        common_part = sp.csr_matrix(
            (
                queries.data[keep_common],
                queries.indices[keep_common],
                _indptr_after_mask(queries, keep_common),
            ),
            shape=queries.shape,
        )
        return rare_part, common_part


def _product_top_k(queries: sp.csr_matrix, postings: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest entries per row of ``queries @ postings``."""
    if sp_matmul_topn is None:
        return _row_top_k((queries @ postings).tocsr(), k)
    # sparse_dot_topn runs the product and the per-row selection in C++, on
    # several threads and without the GIL. Its bindings refuse read-only arrays
    # although they only read them: hand over a private copy of the (frozen) data.
    # It copies the index arrays itself; both copies take well under a millisecond.
    writable = sp.csr_matrix(
        (postings.data.copy(), postings.indices, postings.indptr), shape=postings.shape
    )
    return sp_matmul_topn(queries, writable, top_n=k, n_threads=PRODUCT_THREADS)


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
