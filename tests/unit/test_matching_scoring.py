from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from matching.normalise import normalise_text
from matching.scoring import (
    FEATURES,
    PairSignals,
    SignalTable,
    combine_signals,
    describe_signals,
)
from matching.similarity import (
    code_agreement,
    codes_agree,
    number_agreement,
    partial_similarity,
    token_set_similarity,
    token_sort_similarity,
)

SCORERS = (token_set_similarity, token_sort_similarity, partial_similarity)
SYMMETRIC_SCORERS = (token_set_similarity, token_sort_similarity)
titles = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs", "P")), max_size=40
)
unit = st.floats(min_value=0.0, max_value=1.0)
code_sets = st.frozensets(st.from_regex(r"[a-z]{1,3}[0-9]{1,3}", fullmatch=True), max_size=3)
number_sets = st.frozensets(st.from_regex(r"[0-9]{1,3}(gb)?", fullmatch=True), max_size=3)


def test_scorers_on_product_titles() -> None:
    a = normalise_text("Sony Cyber-shot DSC-W120 Black")
    b = normalise_text("Sony DSC-W120 Cyber-shot Digital Camera - Black")
    c = normalise_text("Canon PowerShot SD1100 IS")
    for scorer in SCORERS:
        assert scorer(a, b) > scorer(a, c)
    assert token_set_similarity(a, b) > 0.9


@given(titles)
def test_identical_strings_score_one(text: str) -> None:
    key = normalise_text(text)
    for scorer in SCORERS:
        assert scorer(key, key) == 1.0 or not key


@given(titles, titles)
def test_scores_within_unit_interval(a: str, b: str) -> None:
    for scorer in SCORERS:
        assert 0.0 <= scorer(normalise_text(a), normalise_text(b)) <= 1.0


@given(titles, titles)
def test_symmetric_scorers(a: str, b: str) -> None:
    a, b = normalise_text(a), normalise_text(b)
    for scorer in SYMMETRIC_SCORERS:
        assert math.isclose(scorer(a, b), scorer(b, a), abs_tol=1e-9)


def test_partial_similarity_symmetric_for_equal_lengths() -> None:
    assert partial_similarity("abcd", "abce") == partial_similarity("abce", "abcd")


def test_code_agreement_cases() -> None:
    assert code_agreement(frozenset({"dscw120"}), frozenset({"dscw120", "x1"})) == 1
    assert code_agreement(frozenset({"kdl46xbr9"}), frozenset({"kdl46xbr9b"})) == 1
    assert code_agreement(frozenset({"dscw120"}), frozenset({"dscw130"})) == -1
    assert code_agreement(frozenset(), frozenset({"dscw130"})) == 0
    assert not codes_agree("w120", "w1200")
    assert not codes_agree("dvpns57ps", "dvpns57pb")  # one model, two colours: not one article
    assert codes_agree("kdl46xbr9", "kdl46xbr9b")  # a suffix added
    assert not codes_agree("dscw120", "dscw130")  # sibling model
    # letters only apart, too short to call one model: no evidence either way
    assert code_agreement(frozenset({"ip47"}), frozenset({"ip47br"})) == 0
    # one series' letters, other numbers: another model
    assert code_agreement(frozenset({"mx850c"}), frozenset({"mx310"})) == -1
    # unrelated numbering schemes say nothing
    assert code_agreement(frozenset({"2044b002"}), frozenset({"ef55250"})) == 0
    assert not codes_agree("kxtsc14w", "kxts208w")
    # a shared model code beside two variants of it, or part numbers one digit apart
    # (natural-gas and propane grills): the pair may be siblings, no agreement
    shared = frozenset({"dvpns57p"})
    assert code_agreement(shared | {"dvpns57ps"}, shared | {"dvpns57pb"}) == 0
    assert code_agreement(frozenset({"s320", "3880001"}), frozenset({"s320", "3780001"})) == 0
    assert code_agreement(frozenset({"3880001"}), frozenset({"3780001"})) == -1
    # ... but not two numbers that differ in more places (unrelated schemes)
    assert code_agreement(frozenset({"s320", "3880001"}), frozenset({"s320", "4780002"})) == 1


@given(code_sets, code_sets)
def test_code_agreement_symmetric_and_bounded(a: frozenset[str], b: frozenset[str]) -> None:
    assert code_agreement(a, b) == code_agreement(b, a)
    assert code_agreement(a, b) in (-1, 0, 1)
    if a:
        assert code_agreement(a, a) == 1


@given(
    code_sets.filter(bool),
    st.from_regex(r"[0-9]{5,9}", fullmatch=True),
    st.integers(min_value=0, max_value=8),
    st.integers(min_value=1, max_value=9),
)
def test_a_shared_code_beside_part_numbers_one_digit_apart_is_no_agreement(
    shared: frozenset[str], part: str, at: int, step: int
) -> None:
    at %= len(part)
    sibling = part[:at] + str((int(part[at]) + step) % 10) + part[at + 1 :]
    assert code_agreement(shared, shared) == 1
    # a shared code never makes two code sets clash; the sibling part numbers take
    # the agreement away
    assert code_agreement(shared | {part}, shared | {sibling}) == 0
    assert code_agreement(shared | {part}, shared | {part}) == 1


@given(number_sets, number_sets)
def test_number_agreement_symmetric_and_bounded(a: frozenset[str], b: frozenset[str]) -> None:
    assert number_agreement(a, b) == number_agreement(b, a)
    assert 0.0 <= number_agreement(a, b) <= 1.0
    assert number_agreement(a, a) == 1.0


margins = st.floats(min_value=-1.0, max_value=1.0)


@given(unit, unit, unit, unit, st.sampled_from([-1, 0, 1]), unit, margins, margins, unit, margins)
def test_combined_score_within_unit_interval(
    c: float,
    w: float,
    ts: float,
    p: float,
    code: int,
    num: float,
    m1: float,
    m2: float,
    lead: float,
    m3: float,
) -> None:
    for unique in (0, 1):
        score = combine_signals(PairSignals(c, w, ts, p, code, num, m1, m2, lead, m3, unique))
        assert 0.0 <= score <= 1.0


@given(unit, unit, unit, unit, st.sampled_from([-1, 0, 1]), unit, margins)
def test_combined_score_rises_with_similarity_and_margin(
    c: float, w: float, ts: float, p: float, code: int, num: float, m: float
) -> None:
    base = combine_signals(PairSignals(c, w, ts, p, code, num, m, m))
    better_text = combine_signals(PairSignals(1.0, 1.0, 1.0, 1.0, code, num, m, m))
    clearer_lead = combine_signals(PairSignals(c, w, ts, p, code, num, 1.0, 1.0))
    more_numbers = combine_signals(PairSignals(c, w, ts, p, code, 1.0, m, m))
    assert better_text >= base - 1e-12
    assert clearer_lead >= base - 1e-12
    assert more_numbers >= base - 1e-12


def test_combined_score_orders_evidence() -> None:
    base = PairSignals(0.7, 0.7, 0.8, 0.8, 0, 1.0)
    agree = PairSignals(0.7, 0.7, 0.8, 0.8, 1, 1.0)
    clash = PairSignals(0.7, 0.7, 0.8, 0.8, -1, 1.0)
    numbers_differ = PairSignals(0.7, 0.7, 0.8, 0.8, 0, 0.0)
    unique = PairSignals(0.7, 0.7, 0.8, 0.8, 1, 1.0, unique_code=1)
    assert combine_signals(unique) > combine_signals(agree) > combine_signals(base)
    assert combine_signals(base) > combine_signals(clash)
    assert combine_signals(numbers_differ) < combine_signals(base)
    # An identical, clearly leading candidate is accepted at the default threshold.
    assert combine_signals(PairSignals(1.0, 1.0, 1.0, 1.0, 0, 1.0, 0.3, 0.3)) > 0.75
    assert "model codes differ" in describe_signals(clash)


def test_unique_code_needs_text_support() -> None:
    weak_text = PairSignals(0.2, 0.1, 0.3, 0.3, 1, 1.0)
    assert combine_signals(PairSignals(0.2, 0.1, 0.3, 0.3, 1, 1.0, unique_code=1)) == (
        combine_signals(weak_text)
    )


def test_unique_code_counts_only_when_the_codes_agree() -> None:
    # the only catalog copy of a shared code, beside two variant codes (agreement 0)
    neutral = PairSignals(0.8, 0.7, 0.8, 0.8, 0, 1.0)
    assert combine_signals(PairSignals(0.8, 0.7, 0.8, 0.8, 0, 1.0, unique_code=1)) == (
        combine_signals(neutral)
    )


def test_signal_table_matches_scalar_scoring() -> None:
    pairs = [
        PairSignals(0.7, 0.6, 0.8, 0.9, code, 0.5, 0.1, -0.1, 0.75, 0.05, int(code > 0))
        for code in (-1, 0, 1)
    ]
    table = SignalTable.from_pairs(pairs)
    assert len(table) == 3
    assert np.allclose(table.scores(), [combine_signals(p) for p in pairs])
    assert table.pair(2) == pairs[2]
    assert table.features().shape == (3, len(FEATURES))


CLASH_FIELDS = (
    "quantity_clash",
    "accessory_mismatch",
    "edition_mismatch",
    "colour_clash",
    "year_clash",
)
COVERAGE_FIELDS = ("lead_item_coverage", "lead_record_coverage", "length_ratio", "item_words")


@given(
    unit,
    unit,
    st.sampled_from([-1, 0, 1]),
    unit,
    margins,
    st.sampled_from(CLASH_FIELDS),
    st.dictionaries(st.sampled_from(COVERAGE_FIELDS), unit),
)
def test_a_variant_clash_never_raises_a_score_or_its_rank(
    c: float, lead: float, code: int, num: float, m: float, clash: str, coverage: dict
) -> None:
    base = PairSignals(c, c, c, c, code, num, m, m, lead, m, **coverage)
    clashing = PairSignals(c, c, c, c, code, num, m, m, lead, m, **coverage, **{clash: 1})
    table = SignalTable.from_pairs([base, clashing])
    score, clashed = table.scores()
    assert clashed <= score + 1e-12
    rank, clashed_rank = table.rank_values()
    assert clashed_rank <= rank + 1e-12


@given(unit, unit, margins, st.sampled_from(COVERAGE_FIELDS), unit, unit)
def test_more_lead_coverage_never_lowers_a_score(
    c: float, lead: float, m: float, field: str, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    a = PairSignals(c, c, c, c, 0, 1.0, m, m, lead, m, **{field: low})
    b = PairSignals(c, c, c, c, 0, 1.0, m, m, lead, m, **{field: high})
    table = SignalTable.from_pairs([a, b])
    assert table.scores()[1] >= table.scores()[0] - 1e-12
    assert table.rank_values()[1] >= table.rank_values()[0] - 1e-12


@given(
    st.lists(st.floats(min_value=-8, max_value=8), max_size=300),
    st.floats(min_value=-2, max_value=2),
)
def test_the_jobs_prior_moves_with_the_evidence(logits: list[float], more: float) -> None:
    from matching.acceptance import MAX_PRIOR_SHIFT, prior_shift

    shift = prior_shift(np.array(logits))
    assert -MAX_PRIOR_SHIFT <= shift <= MAX_PRIOR_SHIFT
    # more confident best candidates never lower the job's prior
    assert prior_shift(np.array(logits) + abs(more)) >= shift - 1e-9


@given(
    st.lists(st.floats(min_value=-8, max_value=8), max_size=300),
    st.floats(min_value=0.05, max_value=0.95),
)
def test_the_jobs_valley_only_ever_relaxes_and_is_bounded(
    logits: list[float], threshold: float
) -> None:
    from matching.acceptance import (
        JOB_OPTIMUM_WEIGHT,
        MAX_RELAXATION,
        MIN_RELAX_ITEMS,
        job_shift,
        optimum_raise,
        prior_shift,
        valley_relaxation,
    )

    z = np.array(logits)
    relaxation = valley_relaxation(z, threshold=threshold)
    assert 0.0 <= relaxation <= MAX_RELAXATION
    if len(z) < MIN_RELAX_ITEMS:
        assert relaxation == 0.0
    shift = prior_shift(z)
    relaxed = valley_relaxation(z + shift, threshold=threshold)
    raised = optimum_raise(z + shift, threshold=threshold)
    # the raise never lifts the threshold past 0.5 (F1 / 2 <= 0.5)
    assert 0.0 <= raised <= max(0.0, -math.log(threshold / (1 - threshold))) + 1e-9
    if len(z) < MIN_RELAX_ITEMS:
        assert raised == 0.0
    if relaxed > 0.0:
        assert job_shift(z, threshold=threshold) == shift + relaxed
    else:
        assert job_shift(z, threshold=threshold) == shift - JOB_OPTIMUM_WEIGHT * raised


def test_a_job_whose_right_pairs_all_score_low_is_relaxed_to_its_valley() -> None:
    from matching.acceptance import valley_relaxation

    rng = np.random.default_rng(7)
    threshold = 0.26
    t = math.log(threshold / (1 - threshold))
    # wrong pairs far below, right pairs clustered just under the default threshold
    wrong, right = rng.normal(-6.0, 1.0, 700), rng.normal(t - 1.0, 0.4, 300)
    relaxation = valley_relaxation(np.r_[wrong, right], threshold=threshold)
    assert (right + relaxation >= t).mean() > 0.95
    assert (wrong + relaxation >= t).mean() < 0.01
    # the same right pairs above the threshold already: nothing to relax
    assert valley_relaxation(np.r_[wrong, right + 3.0], threshold=threshold) == 0.0
    # one population only (no valley between right and wrong): nothing moves
    assert valley_relaxation(rng.normal(t - 1.0, 0.3, 1000), threshold=threshold) == 0.0


def test_a_job_that_reaches_a_high_f1_raises_its_threshold_towards_f1_over_two() -> None:
    from matching.acceptance import optimum_raise

    rng = np.random.default_rng(11)
    threshold = 0.26
    t = math.log(threshold / (1 - threshold))
    # most items clearly right, a few uncertain ones at a probability of about 0.3
    right, uncertain = rng.normal(5.0, 1.0, 900), rng.normal(-0.85, 0.1, 100)
    raised = optimum_raise(np.r_[right, uncertain], threshold=threshold)
    assert (uncertain - raised >= t).mean() < 0.05  # a 0.3 pair no longer pays
    assert (right - raised >= t).mean() > 0.99
    # a job that cannot reach a high F1 keeps its 0.3 pairs: they are worth their recall
    weak = np.r_[rng.normal(-0.85, 0.1, 600), rng.normal(-6.0, 1.0, 400)]
    assert optimum_raise(weak, threshold=threshold) < 0.2


def test_explanations_add_up_to_the_score() -> None:
    from matching.scoring import explain

    pair = PairSignals(0.7, 0.6, 0.8, 0.9, 1, 0.5, 0.1, -0.1, 0.75, 0.05, 1, colour_clash=1)
    table = SignalTable.from_pairs([pair])
    evidence = explain(table.features()[0], prior_shift=0.4)
    logit = sum(e.contribution for e in evidence)
    assert abs(1 / (1 + np.exp(-logit)) - table.scores(0.4)[0]) < 1e-3
    assert {"baseline", "job_prior", "colour_clash"} <= {e.signal for e in evidence}
    assert [abs(e.contribution) for e in evidence] == sorted(
        (abs(e.contribution) for e in evidence), reverse=True
    )
