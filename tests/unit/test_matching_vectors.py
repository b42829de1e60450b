from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import matching.retrieval
import matching.vectors
from matching.retrieval import MIN_QUERY_TERMS, NgramRetriever, postings_cap
from matching.vectors import (
    CharNgramVectoriser,
    WordVectoriser,
    char_ngram_keys,
    freeze,
    gather_rows,
    rowwise_cosine,
)

TITLES = [
    "sony cyber shot dsc w120 black",
    "sony cyber shot dsc w130 silver",
    "canon powershot sd1100 is",
    "linksys etherfast ezxs88w switch",
    "bose acoustimass 5 series iii",
]


def test_char_ngram_keys_are_exact_and_stay_within_documents() -> None:
    docs, keys = char_ngram_keys(["ab", "ba", ""])
    # " ab " -> " ab", "ab "; " ba " -> " ba", "ba "; "  " has no trigram.
    assert docs.tolist() == [0, 0, 1, 1]
    assert len(set(keys.tolist())) == 4
    again_docs, again_keys = char_ngram_keys(["ba"])
    assert again_keys.tolist() == keys[2:].tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab c\u00e9\U0001f600", max_size=8), max_size=6))
def test_char_fit_through_the_alphabet_table_matches_sorting_the_keys(
    texts: list[str],
) -> None:
    table_vec, table_matrix = CharNgramVectoriser.fit(texts)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matching.vectors, "DENSE_NGRAM_LIMIT", 0)
        sorted_vec, sorted_matrix = CharNgramVectoriser.fit(texts)
    assert table_vec.vocabulary.tolist() == sorted_vec.vocabulary.tolist()
    assert table_vec.idf.tolist() == sorted_vec.idf.tolist()
    for part in ("data", "indices", "indptr"):
        assert getattr(table_matrix, part).tolist() == getattr(sorted_matrix, part).tolist()


def test_char_ngram_keys_handle_astral_code_points() -> None:
    _, keys = char_ngram_keys(["😀😀😀", "😀😀😁"])
    assert len(keys) == 6
    assert keys[0] == keys[3]  # " 😀😀" is the only trigram the two share
    assert len(set(keys.tolist())) == 5
    grin, smile = ord("😀"), ord("😁")
    assert int(keys[4]) == (grin << 42) | (grin << 21) | smile


def test_char_vectors_are_unit_rows_and_identity_scores_one() -> None:
    vec, matrix = CharNgramVectoriser.fit(TITLES)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    assert np.allclose(norms, 1.0, atol=1e-5)
    query = vec.transform(TITLES)
    assert np.allclose(rowwise_cosine(query, matrix), 1.0, atol=1e-5)


def test_unseen_ngrams_lower_the_cosine() -> None:
    vec, matrix = CharNgramVectoriser.fit(TITLES)
    plain = vec.transform(["sony dsc w120"])
    padded = vec.transform(["sony dsc w120 zqxjv"])
    assert (padded @ matrix.T).toarray()[0, 0] < (plain @ matrix.T).toarray()[0, 0]


def test_word_vectors_rank_shared_rare_words_higher() -> None:
    vec, matrix = WordVectoriser.fit(TITLES)
    scores = (vec.transform(["w120 black camera"]) @ matrix.T).toarray()[0]
    assert scores.argmax() == 0
    assert 0.0 < scores[0] < 1.0


def test_freeze_makes_matrices_read_only() -> None:
    matrix = freeze(sp.csr_matrix(np.eye(3, dtype=np.float32)))
    with pytest.raises(ValueError):
        matrix.data[0] = 2.0


def test_retriever_finds_the_best_row_first() -> None:
    vec, matrix = CharNgramVectoriser.fit(TITLES)
    retriever = NgramRetriever.build(matrix)
    [(rows, scores)] = retriever.top_k(vec.transform(["canon powershot sd1100"]), k=3)
    assert rows[0] == 2
    assert scores == sorted(scores, reverse=True)
    assert len(rows) <= 3


def test_retriever_keeps_rarest_common_terms_for_short_queries() -> None:
    titles = [f"common words {n}" for n in range(40)]
    vec, matrix = CharNgramVectoriser.fit(titles)
    retriever = NgramRetriever.build(matrix, max_postings=5)  # everything shared is "common"
    [(rows, _)] = retriever.top_k(vec.transform(["common words"]), k=5)
    assert len(rows) == 5
    assert MIN_QUERY_TERMS >= 1


def test_postings_cap_bounds() -> None:
    assert postings_cap(0) == postings_cap(10) >= 1
    assert postings_cap(10**9) >= postings_cap(10**5) >= postings_cap(10**3)


words = st.text(alphabet="abcdefgh 0123", min_size=1, max_size=20)


@settings(max_examples=50, deadline=None)
@given(st.lists(words, min_size=1, max_size=8), words)
def test_retrieval_scores_bounded_and_rows_valid(catalog: list[str], query: str) -> None:
    vec, matrix = CharNgramVectoriser.fit(catalog)
    [(rows, scores)] = NgramRetriever.build(matrix).top_k(vec.transform([query]), k=4)
    assert all(0 <= r < len(catalog) for r in rows)
    assert len(set(rows)) == len(rows)
    assert all(-1e-6 <= s <= 1.0 + 1e-5 for s in scores)


def _top_scores(matrix: sp.csr_matrix) -> list[list[float]]:
    """Each row's stored values, largest first, rounded (tie order may differ)."""
    rows = [matrix.data[matrix.indptr[i] : matrix.indptr[i + 1]] for i in range(matrix.shape[0])]
    return [sorted(np.round(r, 5).tolist(), reverse=True) for r in rows]


@pytest.mark.parametrize("max_postings", [2, 5, 1000])
def test_retrieval_without_accelerator_gives_the_same_scores(
    monkeypatch: pytest.MonkeyPatch, max_postings: int
) -> None:
    catalog = [*TITLES, *(f"sony cyber shot dsc w{n} black" for n in range(20))]
    queries = ["sony dsc w120", "canon powershot", "cyber shot", "zzz", "sony w13 silver"]
    vec, matrix = CharNgramVectoriser.fit(catalog)
    retriever = NgramRetriever.build(matrix, max_postings=max_postings)
    fast = retriever.top_k_matrix(vec.transform(queries), k=4)
    monkeypatch.setattr(matching.retrieval, "sp_matmul_topn", None)
    slow = retriever.top_k_matrix(vec.transform(queries), k=4)
    assert np.diff(fast.indptr).max() <= 4
    assert _top_scores(fast) == _top_scores(slow)
    assert (slow[0].toarray() >= 0).all()


def test_gather_rows_keeps_rows_and_sorted_flag() -> None:
    vec, matrix = CharNgramVectoriser.fit(TITLES)
    frozen = freeze(matrix)
    picked = np.array([3, 0, 3])
    gathered = gather_rows(frozen, picked)
    assert gathered.has_sorted_indices
    assert (gathered.toarray() == frozen.toarray()[picked]).all()
