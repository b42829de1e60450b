"""Rivals: the other items of a job compete for the same catalog records."""

from __future__ import annotations

import dataclasses

from matching import CatalogIndex, MatchResult
from matching.peers import RIVALS, PeerSet

CATALOG = [
    ("b1", "Acme Turbo Blender TB500 Stainless Steel 1.5 Litre"),
    ("b2", "Acme Juice Press JP20 White"),
    ("b3", "Zeta Coffee Grinder CG7 Black"),
]
STRONG = ("a1", "Acme Turbo Blender TB500 Stainless Steel 1.5 Litre jug")
WEAK = ("a2", "Acme Turbo Blender Stainless Steel glass jug 2 Litre")


def _score(results: list[MatchResult], item_id: str) -> float:
    return next((r.score for r in results if r.item_id == item_id), 0.0)


def _match(index: CatalogIndex, items: list[tuple[str, str]], **kwargs) -> list[MatchResult]:
    """``index.match`` with the job's prior held at the default, so that only the
    rivals differ between calls with different items."""
    peers = dataclasses.replace(index.peers(items), prior_shift=0.0)
    return index.match(items, peers=peers, **kwargs)


def test_a_record_that_fits_another_item_better_counts_less() -> None:
    index = CatalogIndex.build(CATALOG)
    alone = _match(index, [WEAK], threshold=0.0)
    together = _match(index, [STRONG, WEAK], threshold=0.0)
    assert alone[0].catalog_id == "b1"
    assert _score(together, "a2") < _score(alone, "a2")
    # the item that fits best keeps its match, and is not worse off for its rival
    assert _score(together, "a1") >= _score(_match(index, [STRONG], threshold=0.0), "a1")


def test_near_copies_of_an_item_are_not_its_rivals() -> None:
    index = CatalogIndex.build(CATALOG)
    copy = ("a3", STRONG[1].upper())
    alone = _match(index, [STRONG])
    with_copy = _match(index, [STRONG, copy])
    assert [r.catalog_id for r in with_copy] == ["b1", "b1"]
    assert _score(with_copy, "a1") == _score(alone, "a1") == _score(with_copy, "a3")


def test_chunks_matched_with_the_jobs_peers_equal_one_call() -> None:
    index = CatalogIndex.build(CATALOG)
    items = [STRONG, WEAK, ("a4", "Zeta grinder CG7"), ("a5", "acme juicer jp20")]
    peers = index.peers(items)
    chunked = index.match(items[:2], peers=peers) + index.match(items[2:], peers=peers)
    assert chunked == index.match(items)


def test_peer_set_rivals_exclude_the_item_and_are_padded() -> None:
    index = CatalogIndex.build(CATALOG)
    peers: PeerSet = index.peers([STRONG, WEAK, ("a4", "Zeta grinder CG7")])
    assert len(peers) == 3
    assert peers.rivals.shape == (3, RIVALS)
    for row in range(3):
        rivals = [r for r in peers.rivals[row].tolist() if r >= 0]
        assert row not in rivals
        assert all(r == -1 for r in peers.rivals[row].tolist()[len(rivals) :])
    assert peers.nbytes > 0
    assert not peers.rivals.flags.writeable


def test_an_item_missing_from_the_peers_has_no_rivals() -> None:
    index = CatalogIndex.build(CATALOG)
    peers = dataclasses.replace(index.peers([STRONG]), prior_shift=0.0)
    assert index.match([WEAK], peers=peers) == _match(index, [WEAK])


def test_the_jobs_prior_moves_scores_with_its_share_of_counterparts() -> None:
    index = CatalogIndex.build(CATALOG)
    matched = [(f"m{i}", CATALOG[i % 3][1] + " new") for i in range(300)]
    unmatched = [(f"u{i}", f"Garden hose {i} ft green rubber") for i in range(300)]
    many = index.peers(matched)
    few = index.peers(matched[:30] + unmatched)
    assert many.prior_shift > 0 > few.prior_shift
    item = [matched[0]]
    assert index.match(item, peers=many)[0].score > index.match(item, peers=few, threshold=0)[0].score
