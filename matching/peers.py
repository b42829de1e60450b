"""The other items of a job, as rivals for the same catalog records.

A catalog record that fits an item well is a weaker match when another item of
the same job fits it as well or better (two listings of different products, one
record): the *rival margin* of a pair is the item's n-gram cosine with the record
minus the best cosine of the item's nearest other items with that record.

A near-copy of the item (n-gram cosine at least :data:`SAME_ITEM_COSINE`) is the
same thing listed twice, not a rival: many items may match one record.

A :class:`PeerSet` holds the items' n-gram vectors (in the catalog index's
vocabulary) and each item's nearest other items, found once when it is built;
it is immutable, built once per set of items like the catalog index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from matching.progress import Progress, no_progress
from matching.retrieval import NgramRetriever, locality_order
from matching.vectors import CharNgramVectoriser, freeze, gather_rows, rowwise_cosine

RIVALS = 4
"""Nearest other items whose fit with an item's candidates is compared."""

SAME_ITEM_COSINE = 0.85
"""N-gram cosine from which another item counts as a copy of the item, not a rival."""

RIVAL_QUERY_TERMS = 2
"""Rarest n-grams an item keeps at least when its nearest other items are looked up."""

RIVAL_POSTINGS = 256
"""Items sharing an n-gram beyond which it is left out of the rival search (except for
an item's :data:`RIVAL_QUERY_TERMS` rarest): bounds the cost per item in large jobs."""

_BATCH_ROWS = 2048


@dataclass(frozen=True, slots=True, eq=False)
class PeerDraft:
    """A job's peers built apart from the catalog index, from the catalog's texts alone
    (:meth:`matching.CatalogIndex.draft_peers`, in another process, say, while the index is
    built): everything but the job's prior shift, which needs the index. ``keys`` are the
    items' normalised texts, ``vocabulary`` the fingerprint of the n-gram vectoriser the
    items were vectorised with (:attr:`matching.vectors.CharNgramVectoriser.fingerprint`)."""

    peers: PeerSet
    keys: list[str]
    vocabulary: str


@dataclass(frozen=True, slots=True, eq=False)
class PeerSet:
    """The n-gram vectors of a set of items and each one's rivals, by item id.

    >>> from matching import CatalogIndex
    >>> index = CatalogIndex.build([("b1", "Sony DSC-W120 camera"), ("b2", "Sony DSC-W130 camera")])
    >>> peers = index.peers([("a1", "sony dsc w120"), ("a2", "sony dsc w130"), ("a3", "lego")])
    >>> peers.rivals[peers.rows["a1"]].tolist()
    [1, -1, -1, -1]
    """

    rows: dict[str, int]
    vectors: sp.csr_matrix
    rivals: np.ndarray  # items x RIVALS: rows of each item's nearest rivals, -1 padded
    # logit shift of every score of these items' job: its own prior (see matching.acceptance)
    prior_shift: float = 0.0

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        keys: Sequence[str],
        char: CharNgramVectoriser,
        *,
        progress: Progress = no_progress,
    ) -> PeerSet:
        """Index items ``ids`` with normalised texts ``keys`` in ``char``'s vocabulary.

        An id that repeats keeps its first text. ``progress`` as in :mod:`matching.progress`.
        """
        rows: dict[str, int] = {}
        for row, item_id in enumerate(ids):
            rows.setdefault(item_id, row)
        keys = list(keys)
        # in batches: vectorising a million texts at once would hold all their n-grams
        vectors = freeze(
            sp.vstack(
                [
                    char.transform(keys[i : i + _BATCH_ROWS])
                    for i in range(0, len(keys), _BATCH_ROWS)
                ]
                or [char.transform([])],
                format="csr",
            )
        )
        progress(0.25)
        rivals = np.full((vectors.shape[0], RIVALS), -1, dtype=np.int32)
        if vectors.shape[0] > 1:
            retriever = NgramRetriever.build(
                vectors, max_postings=RIVAL_POSTINGS, locality=locality_order(keys)
            )
            progress(0.3)
            for start in range(0, vectors.shape[0], _BATCH_ROWS):
                batch = vectors[start : start + _BATCH_ROWS]
                _fill_rivals(rivals[start : start + _BATCH_ROWS], batch, start, vectors, retriever)
                progress(0.3 + 0.7 * min(1.0, (start + _BATCH_ROWS) / vectors.shape[0]))
        progress(1.0)
        rivals.flags.writeable = False
        return cls(rows, vectors, rivals)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def nbytes(self) -> int:
        v = self.vectors
        own = v.data.nbytes + v.indices.nbytes + v.indptr.nbytes + 100 * len(self.rows)
        return int(own + self.rivals.nbytes)

    def rival_cosine(
        self,
        own_rows: np.ndarray,
        pair_items: np.ndarray,
        catalog_vectors: sp.csr_matrix,
        pair_rows: np.ndarray,
    ) -> np.ndarray:
        """For each pair, the best n-gram cosine of the pair's item's rivals with its record.

        ``own_rows[i]`` is item i of a batch's row in this set (-1: not in it, so no
        rivals known); pair n joins item ``pair_items[n]`` with catalog row
        ``pair_rows[n]`` of ``catalog_vectors``. 0 where an item has no rival.
        """
        n_pairs = len(pair_items)
        best = np.zeros(n_pairs)
        own = own_rows[pair_items]
        known = own >= 0
        if not known.any():
            return best
        rival = np.full((n_pairs, RIVALS), -1, dtype=np.int64)
        rival[known] = self.rivals[own[known]]
        pair_of, slot = np.nonzero(rival >= 0)
        if len(pair_of):
            cosine = rowwise_cosine(
                gather_rows(self.vectors, rival[pair_of, slot]),
                gather_rows(catalog_vectors, pair_rows[pair_of]),
            )
            np.maximum.at(best, pair_of, np.minimum(cosine, 1.0))
        return best


def _fill_rivals(
    out: np.ndarray,
    batch: sp.csr_matrix,
    start: int,
    vectors: sp.csr_matrix,
    retriever: NgramRetriever,
) -> None:
    """Write the rivals of ``batch`` (rows ``start``.. of ``vectors``) into ``out``, nearest first."""
    near = retriever.top_k_matrix(batch, k=RIVALS + 1, min_terms=RIVAL_QUERY_TERMS)
    owner = np.repeat(np.arange(batch.shape[0]), np.diff(near.indptr))
    other = near.indices.astype(np.int64)
    keep = other != owner + start
    owner, other = owner[keep], other[keep]
    if not len(owner):
        return
    alike = rowwise_cosine(gather_rows(batch, owner), gather_rows(vectors, other))
    keep = alike < SAME_ITEM_COSINE
    owner, other, alike = owner[keep], other[keep], alike[keep]
    order = np.lexsort((other, -alike, owner))
    owner, other = owner[order], other[order]
    rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
    fits = rank < RIVALS
    out[owner[fits], rank[fits]] = other[fits]
