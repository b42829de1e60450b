"""Matches judged beside the others of their record (matching/claims.py)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from matching.claims import (
    SHARED_CLAIMS_FLOOR,
    claims_allowance,
    contested_chance,
    withdraw_contested,
)
from matching.results import MatchResult

scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
allowances = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(scores, st.lists(scores, max_size=6), scores, allowances)
def test_a_rival_never_makes_a_match_more_likely_right(
    score: float, rivals: list[float], rival: float, allowance: float
) -> None:
    alone = contested_chance(score, [], allowance)
    before = contested_chance(score, rivals, allowance)
    after = contested_chance(score, [*rivals, rival], allowance)
    assert alone == score
    assert 0.0 <= after <= before + 1e-12 <= score + 1e-12


@given(scores, st.lists(scores, min_size=1, max_size=6), allowances, allowances)
def test_more_allowance_never_makes_a_match_less_likely_right(
    score: float, rivals: list[float], a: float, b: float
) -> None:
    low, high = sorted((a, b))
    assert contested_chance(score, rivals, low) <= contested_chance(score, rivals, high) + 1e-12


@given(st.lists(scores, min_size=1, max_size=6), allowances)
def test_a_sure_match_is_never_contested(rivals: list[float], allowance: float) -> None:
    assert contested_chance(1.0, rivals, allowance) == 1.0


claims = st.lists(
    st.tuples(st.sampled_from("abcde"), st.floats(min_value=0.05, max_value=1.0)),
    max_size=25,
)


def _results(claimed: list[tuple[str, float]]) -> list[MatchResult]:
    return [
        MatchResult(f"i{n}", record, score, "fuzzy", "")
        for n, (record, score) in enumerate(claimed)
    ]


@given(claims, st.floats(min_value=0.05, max_value=0.9), st.randoms(use_true_random=False))
def test_withdrawing_keeps_order_and_never_depends_on_it(
    claimed: list[tuple[str, float]], threshold: float, rng: random.Random
) -> None:
    results = _results(claimed)
    kept, withdrawn = withdraw_contested(results, threshold)
    assert [r for r in results if r.item_id not in withdrawn] == kept
    assert all(withdrawn[i] < threshold for i in withdrawn)
    shuffled = list(results)
    rng.shuffle(shuffled)
    again_kept, again_withdrawn = withdraw_contested(shuffled, threshold)
    assert {r.item_id for r in again_kept} == {r.item_id for r in kept}
    assert again_withdrawn.keys() == withdrawn.keys()


@given(claims, st.floats(min_value=0.05, max_value=0.9))
def test_a_match_alone_on_its_record_or_sure_is_kept(
    claimed: list[tuple[str, float]], threshold: float
) -> None:
    results = _results(claimed)
    _, withdrawn = withdraw_contested(results, threshold)
    records = [r.catalog_id for r in results]
    for r in results:
        if records.count(r.catalog_id) == 1 or r.score >= 1.0:
            assert r.item_id not in withdrawn


def test_the_allowance_is_the_share_of_matches_sharing_a_record() -> None:
    unique = [MatchResult(f"u{n}", f"r{n}", 0.9, "fuzzy", "") for n in range(6)]
    pair = [MatchResult("a", "x", 0.5, "fuzzy", ""), MatchResult("b", "x", 0.5, "fuzzy", "")]
    assert claims_allowance(unique) == SHARED_CLAIMS_FLOOR
    assert claims_allowance(unique + pair) == 0.25  # 2 of 8
    assert claims_allowance(pair + pair[:1]) == 1.0
    assert claims_allowance([]) == SHARED_CLAIMS_FLOOR


def test_of_two_claims_the_weak_one_beside_a_sure_one_is_withdrawn() -> None:
    unique = [MatchResult(f"u{n}", f"r{n}", 0.9, "fuzzy", "") for n in range(18)]
    weak = MatchResult("weak", "x", 0.5, "fuzzy", "")
    sure = MatchResult("sure", "x", 1.0, "exact", "")
    kept, withdrawn = withdraw_contested([weak, *unique, sure], 0.26)
    assert [r.item_id for r in kept] == [r.item_id for r in unique] + ["sure"]
    # 2 of 20 share their record: the floor; odds 1 x 0.1 against 1
    assert abs(withdrawn["weak"] - 0.05 / 0.55) < 1e-5  # a sure rival leaves 1e-6
    # two middling claims and nothing sure: both kept at this threshold
    pair = [MatchResult("a", "y", 0.7, "fuzzy", ""), MatchResult("b", "y", 0.7, "fuzzy", "")]
    assert withdraw_contested([*unique, *pair], 0.26)[1] == {}
