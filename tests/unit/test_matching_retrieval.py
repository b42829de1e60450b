"""Retrieval widens where a family of look-alikes is denser than the candidates retrieved,
and the widened query keeps the terms that tell the look-alikes apart; the widened pool is
cut to the best by exact cosine."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.ranking import _best_per_item
from matching.retrieval import NgramRetriever


def _rows(*rows: list[float]) -> sp.csr_matrix:
    matrix = np.array(rows, dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return sp.csr_matrix(matrix)


def test_a_dense_family_gets_more_candidates_and_others_keep_theirs() -> None:
    # 40 look-alikes sharing term 0 (each with a faint own term), and 10 records far apart
    family = [[1.0] + [0.0] * 50 for _ in range(40)]
    for n, row in enumerate(family):
        row[1 + n] = 0.05
    spread = [[0.0] * 41 + [0.0] * 10 for _ in range(10)]
    for n, row in enumerate(spread):
        row[41 + n] = 1.0
        row[0] = 0.1 * (n + 1)
    retriever = NgramRetriever.build(_rows(*family, *spread), max_postings=1000)
    queries = _rows([1.0] + [0.0] * 50, [0.3] + [0.0] * 40 + [1.0] + [0.0] * 9)
    narrow = retriever.top_k_matrix(queries, k=5)
    wide = retriever.top_k_matrix(queries, k=5, dense_k=45)
    assert np.diff(narrow.indptr).tolist() == [5, 5]
    lengths = np.diff(wide.indptr).tolist()
    assert lengths[0] > 40 - 1 and lengths[1] == 5  # only the dense query widened
    # the widened row holds the narrow one's best, the other row is unchanged
    assert set(narrow[0].indices) <= set(wide[0].indices)
    assert (wide[1].toarray() == narrow[1].toarray()).all()
    assert wide.shape == narrow.shape


def _family_with_common_codes() -> tuple[sp.csr_matrix, np.ndarray]:
    """40 look-alikes sharing term 0, each told apart only by its own code term (1 + n),
    which 50 unrelated records (each with a term of its own) share too: every code is
    more common than the family's shared term."""
    n_family, n_noise = 40, 50
    rows, cols, values = [], [], []
    for n in range(n_family):
        rows += [n, n]
        cols += [0, 1 + n]
        values += [1.0, 0.3]
        for m in range(n_noise):
            row = n_family + n * n_noise + m
            rows += [row, row]
            cols += [1 + n, 1 + n_family + n * n_noise + m]
            values += [0.2, 1.0]
    shape = (n_family * (1 + n_noise), 1 + n_family * (1 + n_noise))
    matrix = sp.csr_matrix((np.array(values, dtype=np.float32), (rows, cols)), shape=shape)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    telling = np.zeros(shape[1], dtype=bool)
    telling[1 : 1 + n_family] = True
    return sp.csr_matrix(sp.diags(1 / norms) @ matrix, dtype=np.float32), telling


def test_a_dense_familys_widened_query_keeps_its_telling_terms() -> None:
    matrix, telling = _family_with_common_codes()
    query = np.zeros((1, matrix.shape[1]), dtype=np.float32)
    query[0, 0], query[0, 1 + 3] = 1.0, 0.3
    queries = _rows(*query.tolist())
    plain = NgramRetriever.build(matrix, max_postings=5)
    told = NgramRetriever.build(matrix, max_postings=5, telling_terms=telling)
    # the code term is in 51 records, more than max_postings and term 0: dropped
    without = plain.top_k_matrix(queries, k=5, min_terms=1, dense_k=10)
    with_codes = told.top_k_matrix(queries, k=5, min_terms=1, dense_k=10)
    assert np.ptp(without[0].data) == 0  # ten of forty ties: which ones is arbitrary
    assert with_codes[0].indices[np.argmax(with_codes[0].data)] == 3
    assert (np.sort(with_codes[0].data)[-2] < with_codes[0].data.max()).all()
    # a query that is not dense is left as it was
    narrow = told.top_k_matrix(queries, k=50, min_terms=1, dense_k=60)
    assert (narrow.toarray() == plain.top_k_matrix(queries, k=50, min_terms=1).toarray()).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.integers(1, 30))
def test_no_telling_terms_changes_nothing(seed: int, k: int, max_postings: int) -> None:
    rng = np.random.default_rng(seed)
    matrix = sp.random(60, 30, density=0.2, random_state=rng, dtype=np.float32).tocsr()
    matrix.data = np.round(matrix.data, 1) + 0.1  # ties, as look-alikes make them
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    matrix = sp.csr_matrix(sp.diags(1 / np.maximum(norms, 1e-9)) @ matrix, dtype=np.float32)
    queries = matrix[rng.integers(0, 60, size=5)]
    plain = NgramRetriever.build(matrix, max_postings=max_postings)
    none_told = NgramRetriever.build(
        matrix, max_postings=max_postings, telling_terms=np.zeros(30, dtype=bool)
    )
    a = plain.top_k_matrix(queries, k=k, dense_k=2 * k)
    b = none_told.top_k_matrix(queries, k=k, dense_k=2 * k)
    assert np.diff(a.indptr).tolist() == np.diff(b.indptr).tolist()
    assert np.allclose(np.sort(a.data), np.sort(b.data))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40), st.integers(0, 4)), max_size=80),
    st.integers(1, 6),
)
def test_best_per_item_keeps_each_items_highest_cosines(
    pairs: list[tuple[int, int, int]], size: int
) -> None:
    unique = sorted({(i, r): c for i, r, c in pairs}.items())
    items = np.array([i for (i, _), _ in unique], dtype=np.int64)
    rows = np.array([r for (_, r), _ in unique], dtype=np.int64)
    cosine = np.array([c / 4 for _, c in unique])
    kept_items, kept_rows, kept_cosine = _best_per_item(items, rows, cosine, size)
    assert (np.diff(kept_items) >= 0).all()  # still grouped by item
    for item in set(items.tolist()):
        mine = items == item
        expected = sorted(zip((-cosine[mine]).tolist(), rows[mine].tolist(), strict=True))[:size]
        got = kept_items == item
        assert sorted(zip((-kept_cosine[got]).tolist(), kept_rows[got].tolist(), strict=True)) == (
            expected
        )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 40))
def test_posting_lists_in_another_order_retrieve_the_same_rows_and_scores(
    seed: int, k: int
) -> None:
    rng = np.random.default_rng(seed)
    matrix = sp.random(60, 25, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    matrix.data = rng.random(matrix.nnz, dtype=np.float32) + 0.01  # distinct: no ties
    queries = sp.random(8, 25, density=0.4, format="csr", dtype=np.float32, random_state=rng)
    plain = NgramRetriever.build(matrix, max_postings=1000)
    shuffled = NgramRetriever.build(matrix, max_postings=1000, locality=rng.permutation(60))
    for (rows, scores), (rows2, scores2) in zip(
        plain.top_k(queries, k=k), shuffled.top_k(queries, k=k), strict=True
    ):
        assert rows2 == rows
        assert np.allclose(scores2, scores)
    # the index arrays everyone else sees stay read-only
    assert not shuffled.postings.indices.flags.writeable
