from __future__ import annotations

import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching import (
    DEFAULT_THRESHOLD,
    CatalogIndex,
    DuplicateCatalogIdError,
    InvalidArgumentError,
    InvalidThresholdError,
    MatchResult,
)
from matching.index import EXACT_EXPLANATION
from matching.normalise import normalise_text

CATALOG = [
    ("b1", "Sony Cyber-shot DSC-W120 8.1MP Digital Camera Black SONY"),
    ("b2", "Sony Cyber-shot DSC-W130 8.1MP Digital Camera Silver SONY"),
    ("b3", "Canon PowerShot SD1100 IS 8MP Digital Elph Camera CANON"),
    ("b4", "Linksys EtherFast EZXS88W 8-Port 10/100 Ethernet Switch LINKSYS"),
    ("b5", "Bose Acoustimass 5 Series III Speaker System Black BOSE"),
    ("b6", "Panasonic Lumix DMC-FX35 10MP Digital Camera PANASONIC"),
    ("b7", "Seagate Barracuda 500GB SATA Hard Drive SEAGATE"),
    ("b8", "Seagate Barracuda 750GB SATA Hard Drive SEAGATE"),
]


@pytest.fixture(scope="module")
def index() -> CatalogIndex:
    return CatalogIndex.build(CATALOG)


def test_build_reports_size(index: CatalogIndex) -> None:
    assert len(index) == len(CATALOG)
    assert index.nbytes > 0
    assert "records=8" in repr(index)


def test_exact_stage(index: CatalogIndex) -> None:
    [result] = index.match(
        [("a1", "linksys etherfast ezxs88w 8 port 10-100 ethernet switch linksys")]
    )
    assert result == MatchResult(
        "a1", "b4", 1.0, "exact", "normalised text identical", EXACT_EXPLANATION
    )


def test_code_stage(index: CatalogIndex) -> None:
    [result] = index.match([("a1", "Sony DSCW120 digital camera")])
    assert (result.catalog_id, result.method) == ("b1", "code")
    assert "model code" in result.reason
    assert DEFAULT_THRESHOLD <= result.score <= 1.0


def test_code_collision_needs_text_support() -> None:
    catalog = [("b1", "Sony Cyber-shot DSC-W120 Digital Camera"), ("b2", "Garden hose 25ft green")]
    index = CatalogIndex.build(catalog)
    # The code is unique in the catalog but the rest of the text has nothing in common.
    results = index.match([("a1", "Kitchen mixer DSC-W120 stainless")], threshold=0.0)
    assert all(r.method != "code" for r in results)


def test_fuzzy_stage_prefers_sibling_with_same_numbers(index: CatalogIndex) -> None:
    [result] = index.match([("a1", "Seagate Barracuda 750 GB hard drive")])
    assert result.catalog_id == "b8"
    assert result.method in {"fuzzy", "code"}
    assert 0.0 < result.score <= 1.0


def test_unmatched_items_are_omitted_and_order_kept(index: CatalogIndex) -> None:
    items = [
        ("a1", "Bose Acoustimass 5 Series III speaker system"),
        ("a2", "Organic cotton bath towel set of four"),
        ("a3", "Panasonic DMC-FX35 Lumix"),
    ]
    results = index.match(items)
    assert [r.item_id for r in results] == ["a1", "a3"]
    assert [r.catalog_id for r in results] == ["b5", "b6"]


def test_threshold_one_keeps_only_certain_matches(index: CatalogIndex) -> None:
    items = [("a1", CATALOG[2][1]), ("a2", "Canon PowerShot SD1100 camera")]
    assert [r.item_id for r in index.match(items, threshold=1.0)] == ["a1"]


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_invalid_threshold(index: CatalogIndex, threshold: float) -> None:
    with pytest.raises(InvalidThresholdError):
        index.match([("a1", "x")], threshold=threshold)


def test_candidates_best_first(index: CatalogIndex) -> None:
    cands = index.candidates("Sony Cyber-shot DSC-W120 camera", k=3)
    assert cands[0][0] == "b1"
    assert len(cands) <= 3
    scores = [s for _, s in cands]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    with pytest.raises(InvalidArgumentError):
        index.candidates("x", k=0)


def test_candidates_exact_first(index: CatalogIndex) -> None:
    assert index.candidates(CATALOG[6][1], k=2)[0] == ("b7", 1.0)


def test_empty_catalog_and_empty_items() -> None:
    empty = CatalogIndex.build([])
    assert len(empty) == 0
    assert empty.match([("a1", "anything")]) == []
    assert empty.candidates("anything") == []
    assert CatalogIndex.build(CATALOG).match([]) == []


def test_blank_texts_do_not_match() -> None:
    index = CatalogIndex.build([("b1", ""), ("b2", "Canon SD1100")])
    assert index.match([("a1", ""), ("a2", "!!!")]) == []


def test_duplicate_catalog_ids_rejected() -> None:
    with pytest.raises(DuplicateCatalogIdError):
        CatalogIndex.build([("b1", "x"), ("b1", "y")])


def test_match_is_repeatable_and_does_not_mutate(index: CatalogIndex) -> None:
    items = [(f"a{n}", text) for n, (_, text) in enumerate(CATALOG)]
    items += [("z1", "sony dsc w130 silver"), ("z2", "linksys switch ezxs88w")]
    first = index.match(items)
    assert index.match(items) == first
    assert index.match(list(reversed(items))) == list(reversed(first))


def test_counted_words_do_not_hide_the_model_code() -> None:
    catalog = [
        ("b1", "Panasonic KX-TSC14W 2-Line Telephone Panasonic"),
        ("b2", "Panasonic KX-TS208W Corded Phone Panasonic"),
        ("b3", "Panasonic KX-TS3282W Corded Telephone Panasonic"),
    ]
    index = CatalogIndex.build(catalog)
    [result] = index.match([("a1", "Panasonic 2-Line Integrated Telephone System - KXTS208W")])
    assert result.catalog_id == "b2"
    assert result.method == "code" or "model code agrees" in result.reason


def test_index_arrays_are_read_only_and_unchanged_by_match(index: CatalogIndex) -> None:
    scorer = index._scorer  # noqa: SLF001 - checking the immutability promise
    assert scorer is not None
    arrays = [scorer.char_matrix.data, scorer.word_matrix.indices, scorer.retriever.postings.data]
    before = [a.copy() for a in arrays]
    index.match([("a1", "sony dsc w130 silver"), ("a2", "canon sd1100 is elph")])
    assert all(not a.flags.writeable for a in arrays)
    assert all((a == b).all() for a, b in zip(arrays, before, strict=True))


def test_concurrent_matching_from_threads(index: CatalogIndex) -> None:
    items = [("a1", "sony dsc w130 silver"), ("a2", "canon sd1100 is elph"), ("a3", "bose am5 iii")]
    expected = index.match(items)
    outcomes: list[list[MatchResult]] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(20):
            got = index.match(items)
            with lock:
                outcomes.append(got)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 80
    assert all(o == expected for o in outcomes)


def test_many_chunks_many_records() -> None:
    catalog = [(f"c{n}", f"Acme Widget Model AW-{1000 + n} series {n % 7}") for n in range(3000)]
    index = CatalogIndex.build(catalog)
    items = [(f"i{n}", f"acme widget aw{1000 + n}") for n in range(0, 3000, 7)]
    results = index.match(items)
    assert len(results) == len(items)
    assert all(r.catalog_id == f"c{r.item_id[1:]}" for r in results)
    assert {r.method for r in results} == {"code"}


titles = st.text(
    alphabet=st.characters(codec="latin-1", categories=("L", "N", "Zs", "Pd")), max_size=30
)
catalogs = st.lists(titles, min_size=1, max_size=12)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(catalogs, st.lists(titles, max_size=12), st.floats(min_value=0.0, max_value=1.0))
def test_match_invariants(
    catalog_texts: list[str], item_texts: list[str], threshold: float
) -> None:
    catalog = [(f"c{n}", t) for n, t in enumerate(catalog_texts)]
    items = [(f"i{n}", t) for n, t in enumerate(item_texts)]
    index = CatalogIndex.build(catalog)
    results = index.match(items, threshold=threshold)
    item_ids = [r.item_id for r in results]
    assert len(item_ids) == len(set(item_ids))
    assert set(item_ids) <= {i for i, _ in items}
    assert {r.catalog_id for r in results} <= {c for c, _ in catalog}
    positions = [int(i[1:]) for i in item_ids]
    assert positions == sorted(positions)
    for r in results:
        assert threshold <= r.score <= 1.0
        assert r.method in {"exact", "code", "fuzzy"}
        assert r.reason


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(catalogs, st.data())
def test_item_identical_to_catalog_record_matches_it(
    catalog_texts: list[str], data: st.DataObject
) -> None:
    catalog = [(f"c{n}", t) for n, t in enumerate(catalog_texts)]
    index = CatalogIndex.build(catalog)
    position = data.draw(st.integers(0, len(catalog) - 1))
    text = catalog_texts[position]
    results = index.match([("item", text)])
    from matching import normalise_text

    key = normalise_text(text)
    if not key:
        assert results == []
        return
    [result] = results
    # Records with the same normalised text are interchangeable; the first one wins.
    first_same = next(c for c, t in catalog if normalise_text(t) == key)
    assert (result.catalog_id, result.score, result.method) == (first_same, 1.0, "exact")


def test_explanations_sum_to_the_score(index: CatalogIndex) -> None:
    import math

    for result in index.match([("a1", "Sony DSCW120 camera"), ("a2", "Bose Acoustimass 5")]):
        logit = sum(e.contribution for e in result.explanation)
        assert math.isclose(1 / (1 + math.exp(-logit)), result.score, abs_tol=2e-3)
        assert result.explanation[0].signal in {e.signal for e in result.explanation}


def test_candidates_many_agrees_with_match_and_candidates(index: CatalogIndex) -> None:
    items = [("a1", "Sony DSCW120 camera"), ("a2", "Seagate Barracuda 750 GB"), ("a3", "lego")]
    peers = index.peers(items)
    many = index.candidates_many(items, k=3, peers=peers)
    assert [len(c) for c in many] == [3, 3, 0]  # "lego" shares no n-gram with the catalog
    matched = {r.item_id: r for r in index.match(items, peers=peers)}
    for found in many:
        assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
        best = found[0] if found else None
        if best is not None and best.item_id in matched:
            assert matched[best.item_id] == best
    one = index.candidates("Sony DSCW120 camera", k=3)
    assert one[0][0] == many[0][0].catalog_id


RESTAURANTS = [
    ("r1", "granita 23725 w. malibu rd. malibu 310-456-0488 californian"),
    ("r2", "chinois on main 2709 main st. santa monica 310-392-9025 french"),
    ("r3", "citrus 6703 melrose ave. los angeles 213-857-0034 californian"),
    ("r4", "fenix 8358 sunset blvd. west hollywood 213-848-6677 american"),
    ("r5", "atlanta fish market 265 pharr rd. atlanta 404-262-3165 seafood"),
    ("r6", "chops 70 w. paces ferry rd. atlanta 404-262-2675 steakhouses"),
]


def test_one_word_item_is_no_match_for_a_record_that_contains_it() -> None:
    """A lone city or cuisine names no one record, even a word found in one record only."""
    index = CatalogIndex.build(RESTAURANTS)
    items = [("a", "malibu"), ("b", "atlanta"), ("c", "french")]
    items.append(("d", "chinois on main 2709 main st. santa monica 310/392-9025 pacific"))
    matched = {r.item_id: r.catalog_id for r in index.match(items)}
    assert matched == {"d": "r2"}


def test_a_pairs_score_does_not_depend_on_the_batch_it_is_scored_in() -> None:
    """A chunk matched in shares (some in a helper process) stores what it stores matched
    whole: the same item and record give the same score to the last bit in any batch, so
    candidates that tie keep their order (a matrix product once summed rows differently
    by where they fell in it)."""
    rng = random.Random(4)
    brands = ["Sony", "Canon", "Nikon", "Bose", "Dell", "Apple"]
    kinds = ["camera", "speaker", "monitor", "laptop", "router"]
    records = [
        (
            f"c{i}",
            f"{rng.choice(brands)} {rng.choice(kinds)} {chr(65 + i % 26)}{i // 3:03d}"
            f" {rng.choice([16, 32, 64])}GB",
        )
        for i in range(600)
    ]
    index = CatalogIndex.build(records)
    items = []
    for n in range(300):
        words = rng.choice(records)[1].split()
        rng.shuffle(words)
        items.append((f"i{n}", " ".join(words).lower()))
    peers = index.peers(items)
    texts = [t for _, t in items]
    keys = [normalise_text(t) for t in texts]

    def scored(positions: list[int]) -> dict[tuple[int, int], tuple[float, float]]:
        _, _, pairs = index.score_texts(
            [texts[p] for p in positions], [keys[p] for p in positions], 10, peers, positions
        )
        return {
            (positions[i], r): (s, k)
            for i, r, s, k in zip(
                pairs.items.tolist(),
                pairs.rows.tolist(),
                pairs.scores.tolist(),
                pairs.rank.tolist(),
                strict=True,
            )
        }

    whole = scored(list(range(len(items))))
    for start, size in ((0, 7), (3, 41), (101, 150), (250, 50)):
        part = scored(list(range(start, start + size)))
        assert part == {key: whole[key] for key in part}
