"""TF-IDF vectorisers over character n-grams and word tokens.

Both produce L2-normalised ``scipy.sparse.csr_matrix`` rows (float32), so a dot
product of two rows is their cosine similarity. Character n-grams are extracted
with NumPy: each text is padded with a space, its code points are packed three
to a ``uint64`` (a code point fits in 21 bits), which makes every trigram an
exact integer key without per-character Python work.

Query rows keep the weight of n-grams the catalog has never seen in their norm,
so unknown material lowers the cosine instead of being silently ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

NGRAM_SIZE = 3
_BITS_PER_CHAR = 21


def _csr_from_pairs(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """Count (row, col) pairs into a CSR matrix of term frequencies."""
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(n_rows, n_cols), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def _weight_and_normalise(
    counts: sp.csr_matrix, idf: np.ndarray, extra_sq_norm: np.ndarray | None = None
) -> sp.csr_matrix:
    """Apply sublinear tf and idf, then L2-normalise each row in place."""
    counts.data = (1.0 + np.log(counts.data)) * idf[counts.indices]
    sq = np.asarray(counts.multiply(counts).sum(axis=1)).ravel()
    if extra_sq_norm is not None:
        sq = sq + extra_sq_norm
    norms = np.sqrt(sq)
    norms[norms == 0.0] = 1.0
    counts.data /= np.repeat(norms, np.diff(counts.indptr)).astype(np.float32)
    counts.data = counts.data.astype(np.float32, copy=False)
    return counts


def _idf(document_frequency: np.ndarray, n_documents: int) -> np.ndarray:
    return (np.log((1.0 + n_documents) / (1.0 + document_frequency)) + 1.0).astype(np.float32)


def _code_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The code points of ``texts``, each padded with one space on both sides, joined;
    with each padded text's length."""
    padded = [f" {text} " for text in texts]
    lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
    points = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32)
    return points, lengths


def _ngram_starts(lengths: np.ndarray, total: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(document_index, start)`` of every n-gram that stays within its padded text."""
    per_text = np.maximum(lengths - (n - 1), 0)
    docs = np.repeat(np.arange(len(lengths), dtype=np.int64), per_text)
    # an n-gram starts at a text's offset plus its rank among that text's n-grams
    offsets = np.cumsum(lengths) - lengths
    rank = np.arange(len(docs), dtype=np.int64) - np.repeat(
        np.cumsum(per_text) - per_text, per_text
    )
    return docs, offsets[docs] + rank


def char_ngram_keys(texts: Sequence[str], *, n: int = NGRAM_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(document_index, key)`` for every character n-gram in ``texts``.

    Each text is padded with one space on both sides. Keys are exact: equal keys
    mean equal n-grams.

    >>> docs, keys = char_ngram_keys(["ab", "ab"])
    >>> docs.tolist(), bool(keys[0] == keys[2])
    ([0, 0, 1, 1], True)
    """
    if n * _BITS_PER_CHAR > 64:
        raise ValueError("n-grams longer than 3 characters do not fit a 64-bit key")
    points, lengths = _code_points(texts)
    if len(points) < n:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    docs, starts = _ngram_starts(lengths, len(points), n)
    wide = points.astype(np.uint64)
    keys = wide[starts]
    for offset in range(1, n):
        keys <<= np.uint64(_BITS_PER_CHAR)
        keys |= wide[starts + offset]
    return docs, keys


def digit_ngrams(vocabulary: np.ndarray, *, n: int = NGRAM_SIZE) -> np.ndarray:
    """Which n-gram keys (as :func:`char_ngram_keys` makes them) hold an ASCII digit.

    >>> _, keys = char_ngram_keys(["w120 x"])
    >>> digit_ngrams(keys).tolist()
    [True, True, True, True, True, False]
    """
    mask = np.uint64((1 << _BITS_PER_CHAR) - 1)
    found = np.zeros(len(vocabulary), dtype=bool)
    for position in range(n):
        point = (vocabulary >> np.uint64(position * _BITS_PER_CHAR)) & mask
        found |= (point >= ord("0")) & (point <= ord("9"))
    return found


DENSE_NGRAM_LIMIT = 1 << 22
"""Largest number of possible n-grams (alphabet size to the n) for which the vocabulary
is fitted through a lookup table instead of sorting and searching the n-gram keys."""


def _fit_ngrams(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(document_index, column, vocabulary)`` of the n-grams of ``texts``: the sorted
    distinct keys of :func:`char_ngram_keys` and each n-gram's position among them.

    Catalog texts use few distinct characters: numbering them in code-point order
    makes an n-gram a small integer that orders as its key does, so a table indexed by
    it replaces ``np.unique`` and ``np.searchsorted`` over millions of keys.
    """
    points, lengths = _code_points(texts)
    if len(points) >= n:
        present = np.bincount(points, minlength=1) > 0
        alphabet = np.flatnonzero(present).astype(np.uint64)
        size = len(alphabet)
        if size**n <= DENSE_NGRAM_LIMIT:
            ranks = (np.cumsum(present, dtype=np.int64) - 1)[points]
            docs, starts = _ngram_starts(lengths, len(points), n)
            dense = ranks[starts]
            for offset in range(1, n):
                dense *= size
                dense += ranks[starts + offset]
            seen = np.zeros(size**n, dtype=bool)
            seen[dense] = True
            used = np.flatnonzero(seen)
            column_of = np.zeros(size**n, dtype=np.int64)
            column_of[used] = np.arange(len(used), dtype=np.int64)
            vocabulary = np.zeros(len(used), dtype=np.uint64)
            for position in range(n):
                digit = (used // size ** (n - 1 - position)) % size
                vocabulary <<= np.uint64(_BITS_PER_CHAR)
                vocabulary |= alphabet[digit]
            return docs, column_of[dense], vocabulary
    docs, keys = char_ngram_keys(texts, n=n)
    # unique + searchsorted is several times faster than unique(return_inverse=True),
    # which argsorts every n-gram.
    vocabulary = np.unique(keys)
    return docs, np.searchsorted(vocabulary, keys), vocabulary


@dataclass(frozen=True, slots=True, eq=False)
class CharNgramVectoriser:
    """TF-IDF over character trigrams, fitted on a catalog.

    >>> vec, matrix = CharNgramVectoriser.fit(["sony dsc w120", "canon sd1100"])
    >>> query = vec.transform(["sony dsc w120"])
    >>> round(float((query @ matrix.T).toarray()[0, 0]), 3)
    1.0
    """

    vocabulary: np.ndarray  # sorted uint64 n-gram keys
    idf: np.ndarray  # float32, one per vocabulary entry
    unseen_idf: float

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[CharNgramVectoriser, sp.csr_matrix]:
        """Fit on ``texts`` and return the vectoriser with their matrix."""
        docs, cols, vocabulary = _fit_ngrams(texts, NGRAM_SIZE)
        counts = _csr_from_pairs(docs, cols, len(texts), len(vocabulary))
        df = np.bincount(counts.indices, minlength=len(vocabulary))
        idf = _idf(df, len(texts))
        unseen = float(_idf(np.zeros(1), len(texts))[0])
        matrix = _weight_and_normalise(counts, idf)
        return cls(vocabulary, idf, unseen), matrix

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Vectorise ``texts`` against the fitted vocabulary."""
        docs, keys = char_ngram_keys(texts)
        cols = np.searchsorted(self.vocabulary, keys)
        if len(self.vocabulary):
            np.minimum(cols, len(self.vocabulary) - 1, out=cols)
            known = self.vocabulary[cols] == keys
        else:
            known = np.zeros(len(keys), dtype=bool)
        counts = _csr_from_pairs(docs[known], cols[known], len(texts), len(self.vocabulary))
        extra = _unseen_sq_norm(docs[~known], keys[~known], len(texts), self.unseen_idf)
        return _weight_and_normalise(counts, self.idf, extra)

    @property
    def nbytes(self) -> int:
        return int(self.vocabulary.nbytes + self.idf.nbytes)

    @property
    def fingerprint(self) -> str:
        """A digest of what the vectoriser maps texts with: equal for two fitted on the
        same texts (in two processes, say), different for any other vocabulary or weights.

        >>> a, _ = CharNgramVectoriser.fit(["sony dsc w120"])
        >>> b, _ = CharNgramVectoriser.fit(["sony dsc w120"])
        >>> c, _ = CharNgramVectoriser.fit(["sony dsc w130"])
        >>> a.fingerprint == b.fingerprint != c.fingerprint
        True
        """
        digest = hashlib.blake2b(digest_size=16)
        for part in (self.vocabulary, self.idf, np.float64(self.unseen_idf)):
            digest.update(np.ascontiguousarray(part).tobytes())
        return digest.hexdigest()


def _unseen_sq_norm(docs: np.ndarray, keys: np.ndarray, n_docs: int, idf: float) -> np.ndarray:
    """Squared norm contributed by out-of-vocabulary terms, per document."""
    if len(docs) == 0:
        return np.zeros(n_docs)
    pairs = np.stack([docs.astype(np.uint64), keys])
    unique_pairs, counts = np.unique(pairs, axis=1, return_counts=True)
    unique_docs = unique_pairs[0].astype(np.int64)
    weights = ((1.0 + np.log(counts)) * idf) ** 2
    return np.bincount(unique_docs, weights=weights, minlength=n_docs)


@dataclass(frozen=True, slots=True, eq=False)
class WordVectoriser:
    """TF-IDF over whitespace tokens of normalised text, fitted on a catalog.

    >>> vec, matrix = WordVectoriser.fit(["sony dsc w120", "canon sd1100"])
    >>> round(float((vec.transform(["w120 sony"]) @ matrix.T).toarray()[0, 0]), 3) > 0.5
    True
    """

    vocabulary: dict[str, int]
    idf: np.ndarray
    unseen_idf: float

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[WordVectoriser, sp.csr_matrix]:
        words_per_text = [text.split() for text in texts]
        all_words = [word for words in words_per_text for word in words]
        vocabulary = {word: n for n, word in enumerate(dict.fromkeys(all_words))}
        cols = np.fromiter(
            map(vocabulary.__getitem__, all_words), dtype=np.int64, count=len(all_words)
        )
        lengths = np.fromiter(map(len, words_per_text), dtype=np.int64, count=len(texts))
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        counts = _csr_from_pairs(rows, cols, len(texts), len(vocabulary))
        df = np.bincount(counts.indices, minlength=len(vocabulary))
        idf = _idf(df, len(texts))
        unseen = float(_idf(np.zeros(1), len(texts))[0])
        return cls(vocabulary, idf, unseen), _weight_and_normalise(counts, idf)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        rows: list[int] = []
        cols: list[int] = []
        extra = np.zeros(len(texts))
        lookup = self.vocabulary.get
        unseen_sq = self.unseen_idf**2
        for row, text in enumerate(texts):
            unseen: set[str] = set()
            for word in text.split():
                col = lookup(word)
                if col is None:
                    unseen.add(word)
                else:
                    rows.append(row)
                    cols.append(col)
            # Repeated unknown words are rare in titles; count each once.
            extra[row] = len(unseen) * unseen_sq
        counts = _csr_from_pairs(
            np.asarray(rows, dtype=np.int64),
            np.asarray(cols, dtype=np.int64),
            len(texts),
            len(self.vocabulary),
        )
        return _weight_and_normalise(counts, self.idf, extra)

    @property
    def nbytes(self) -> int:
        # A dict entry with a short str key costs roughly 100 bytes.
        return int(self.idf.nbytes + 100 * len(self.vocabulary))


def freeze(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Put ``matrix`` in canonical form and make its arrays read-only.

    SciPy caches "canonical format" checks on first use and may sort indices in
    place; doing that once here, then locking the arrays, keeps a shared index
    free of writes when several threads read it.
    """
    matrix.sum_duplicates()
    matrix.sort_indices()
    _ = matrix.has_canonical_format
    for array in (matrix.data, matrix.indices, matrix.indptr):
        array.flags.writeable = False
    return matrix


def gather_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``matrix[rows]``, marked as having sorted indices when ``matrix`` has them.

    Copied rows keep their order, but SciPy does not carry the flag over and would
    re-sort every gathered row before an element-wise product.

    >>> gather_rows(freeze(sp.csr_matrix(np.eye(3, dtype=np.float32))), np.array([2, 0])).indices
    array([2, 0], dtype=int32)
    """
    out = matrix[rows]
    if matrix.has_sorted_indices:
        out.has_sorted_indices = True
    return out


def rowwise_cosine(left: sp.csr_matrix, right: sp.csr_matrix) -> np.ndarray:
    """Cosine of row ``i`` of ``left`` with row ``i`` of ``right`` (both L2-normalised).

    >>> vec, m = WordVectoriser.fit(["a b", "c d"])
    >>> rowwise_cosine(m, m).round(3).tolist()
    [1.0, 1.0]
    """
    return np.asarray(left.multiply(right).sum(axis=1), dtype=np.float64).ravel()
