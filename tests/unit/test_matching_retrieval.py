"""Retrieval widens where a family of look-alikes is denser than the candidates retrieved."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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
