"""Review and learning in the pure library (issue 11): which decisions a reviewer sees and in
what order (matching.review), and a project's acceptance re-fitted from decisions
(matching.calibration)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from matching import DEFAULT_THRESHOLD, CatalogIndex
from matching.calibration import (
    MAX_EXTRAPOLATION,
    MIN_LABELS,
    Calibration,
    estimate_precision_recall,
    fit_calibration,
    labels_from_rows,
)
from matching.review import (
    MAX_CONTESTED_CLAIMS,
    REVIEW_CANDIDATES,
    REVIEW_MIN_ERROR,
    contested_error_chance,
    error_chance,
)

scores = st.floats(min_value=0.001, max_value=0.999)
CATALOG = [
    ("b1", "Sony Cyber-shot DSC-W120 digital camera black"),
    ("b2", "Sony Cyber-shot DSC-W130 digital camera silver"),
    ("b3", "Canon PowerShot SD1100 IS digital camera"),
    ("b4", "Nikon Coolpix S210 black"),
    ("b5", "Panasonic Lumix DMC-FS3 silver"),
]
ITEMS = [
    ("a1", "Sony Cyber-shot DSC-W120 digital camera black"),  # exact
    ("a2", "sony dsc w12 camera"),
    ("a3", "canon powershot sd1000"),
    ("a4", "nikon coolpix"),
    ("a5", "Olympus Stylus 1010 zoom"),
    ("a6", "Panasonic Lumix DMC-FS3"),
]


# -- the queue's order -------------------------------------------------------------------


@given(scores, scores)
def test_a_weaker_match_is_more_likely_wrong(low: float, high: float) -> None:
    if low > high:
        low, high = high, low
    assert error_chance(low, matched=True) >= error_chance(high, matched=True)


@given(scores, st.lists(scores, max_size=4))
def test_an_unmatched_item_is_more_likely_wrong_the_more_its_candidates_score(
    best: float, others: list[float]
) -> None:
    alone = error_chance(best, matched=False, candidate_scores=[best])
    more = error_chance(best, matched=False, candidate_scores=[best, *others])
    assert 0.0 <= alone <= more <= 1.0
    assert alone == round(best, 9)


@given(scores, st.lists(scores, max_size=MAX_CONTESTED_CLAIMS - 2), scores)
def test_a_rival_claim_on_the_record_never_makes_a_match_more_likely_right(
    score: float, rivals: list[float], another: float
) -> None:
    alone = contested_error_chance(score, [])
    contested = contested_error_chance(score, rivals)
    more = contested_error_chance(score, [*rivals, another])
    assert alone == error_chance(score, matched=True)
    assert 0.0 <= alone <= contested <= more <= 1.0


@given(scores, st.lists(scores, min_size=MAX_CONTESTED_CLAIMS, max_size=12))
def test_a_record_claimed_by_too_many_items_judges_each_match_on_its_own(
    score: float, rivals: list[float]
) -> None:
    assert contested_error_chance(score, rivals) == error_chance(score, matched=True)


@given(scores, scores, scores)
def test_of_two_claims_the_weaker_is_the_more_likely_wrong(a: float, b: float, c: float) -> None:
    low, high = sorted((a, b))
    assert contested_error_chance(low, [high, c]) >= contested_error_chance(high, [low, c])
    # a stronger rival leaves a match more likely wrong
    assert contested_error_chance(c, [high]) >= contested_error_chance(c, [low])


def test_match_for_review_finds_the_same_matches_and_reviews_the_uncertain() -> None:
    index = CatalogIndex.build(CATALOG)
    for threshold in (0.1, DEFAULT_THRESHOLD, 0.6):
        plain = index.match(ITEMS, threshold=threshold)
        found, review = index.match_for_review(
            ITEMS, threshold=threshold, review_from=REVIEW_MIN_ERROR
        )
        assert found == plain
        matched = {m.item_id: m for m in found}
        assert "a1" not in {p.item_id for p in review}  # exact: nothing to review
        for pair in review:
            assert pair.error_chance >= REVIEW_MIN_ERROR
            assert pair.candidates[0] == (pair.proposed.catalog_id, pair.proposed.score)
            assert 1 <= len(pair.candidates) <= REVIEW_CANDIDATES
            assert pair.matched == (pair.item_id in matched)
            if pair.matched:
                assert pair.proposed == matched[pair.item_id]
            else:
                assert pair.proposed.score < threshold and pair.proposed.explanation
        # every item left out is one the matcher is nearly sure of
        reviewed = {p.item_id for p in review}
        for item_id, _ in ITEMS:
            if item_id in matched and item_id not in reviewed:
                assert 1 - matched[item_id].score < REVIEW_MIN_ERROR


# -- the re-fitted acceptance ------------------------------------------------------------


def test_fewer_than_twenty_labels_leave_the_default() -> None:
    few = fit_calibration([0.3] * (MIN_LABELS - 1), [False] * (MIN_LABELS - 1))
    assert few == Calibration(labels=MIN_LABELS - 1)


def test_the_default_is_a_prior_a_few_labels_move_it_a_little_many_more() -> None:
    thresholds = []
    for n in (20, 60, 200, 1000):
        # the project's pairs are right far less often than their scores say
        thresholds.append(fit_calibration([0.5] * n, [k % 5 == 0 for k in range(n)]).threshold)
    assert all(t > DEFAULT_THRESHOLD for t in thresholds)
    assert thresholds == sorted(thresholds)
    assert thresholds[-1] - thresholds[0] > 0.05


def test_labels_that_agree_with_the_default_keep_it() -> None:
    rng = np.random.default_rng(1)
    s = rng.uniform(0.05, 0.95, 2000)
    right = rng.uniform(size=s.size) < s  # calibrated: right with chance = score
    fitted = fit_calibration(s.tolist(), right.tolist())
    assert abs(fitted.intercept) < 0.2 and abs(fitted.slope - 1) < 0.15
    assert abs(fitted.threshold - DEFAULT_THRESHOLD) < 0.05


@settings(max_examples=60, deadline=None)
@given(st.lists(scores, min_size=MIN_LABELS, max_size=80), st.booleans())
def test_labels_all_one_way_move_the_threshold_that_way(s: list[float], right: bool) -> None:
    fitted = fit_calibration(s, [right] * len(s))
    assert 0.0 < fitted.threshold < 1.0 and fitted.slope > 0
    if right:  # every pair was right: accept more
        assert fitted.threshold <= DEFAULT_THRESHOLD + 1e-9
    else:
        assert fitted.threshold >= DEFAULT_THRESHOLD - 1e-9


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(scores, st.booleans()), min_size=MIN_LABELS, max_size=80))
def test_the_threshold_moves_little_beyond_the_labelled_scores(
    labels: list[tuple[float, bool]],
) -> None:
    s = [score for score, _ in labels]
    fitted = fit_calibration(s, [right for _, right in labels])
    moved, default = _logit(fitted.threshold), _logit(DEFAULT_THRESHOLD)
    lowest, highest = _logit(min(s)), _logit(max(s))
    if moved < default:
        assert moved >= min(default, lowest - MAX_EXTRAPOLATION) - 1e-6
    else:
        assert moved <= max(default, highest + MAX_EXTRAPOLATION) + 1e-6


def test_answers_nearly_all_right_do_not_accept_everything() -> None:
    # the case that made it: a default that under-accepts, whose queue's pairs (scores 0.12
    # to 0.8) were 47 of 50 right; the unbounded fit moved the threshold to 0.002
    rng = np.random.default_rng(3)
    s = rng.uniform(0.12, 0.8, 50)
    right = [True] * 47 + [False] * 3
    fitted = fit_calibration(s.tolist(), right)
    assert fitted.threshold < DEFAULT_THRESHOLD
    assert _logit(fitted.threshold) >= _logit(float(s.min())) - MAX_EXTRAPOLATION - 1e-6


@given(st.lists(st.tuples(scores, st.integers(min_value=0, max_value=50)), max_size=30))
def test_estimates_are_shares(histogram: list[tuple[float, int]]) -> None:
    precision, recall = estimate_precision_recall(Calibration(), histogram)
    for value in (precision, recall):
        assert value is None or 0.0 <= value <= 1.0


def test_labels_skip_decisions_that_say_nothing_about_the_pair() -> None:
    assert labels_from_rows([(0.4, True), (0.3, None), (None, False), (0.2, False)]) == (
        [0.4, 0.2],
        [True, False],
    )
