"""The ETA estimator as a pure function: warm-up left out, recent chunks weighted, gaps capped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.eta import MAX_GAP_SECONDS, ChunkTiming, build_seconds_left, eta_seconds, stage_rate


def _chunks(durations: list[float], items: int = 100, *, gap: float = 0.0) -> list[ChunkTiming]:
    """Back-to-back chunks of ``items`` each, taking ``durations`` seconds, ``gap`` apart."""
    out, t = [], 0.0
    for n, d in enumerate(durations):
        out.append(ChunkTiming(items, t, t + d, warmup=n == 0))
        t += d + gap
    return out


def test_a_steady_stage_gives_its_rate() -> None:
    assert stage_rate(_chunks([1.0] * 10)) == pytest.approx(100.0)


def test_a_slow_first_chunk_is_left_out_once_later_ones_exist() -> None:
    assert stage_rate(_chunks([30.0, 1.0, 1.0])) == pytest.approx(100.0)
    # alone, it is all there is
    assert stage_rate(_chunks([30.0])) == pytest.approx(100 / 30)


def test_the_first_chunks_preparation_does_not_count() -> None:
    [first] = _chunks([30.0])
    prepared = ChunkTiming(100, first.started, first.finished, prepare_seconds=29.0, warmup=True)
    assert stage_rate([prepared]) == pytest.approx(100.0)


def test_recent_chunks_weigh_more() -> None:
    slowing = stage_rate(_chunks([5.0] + [1.0] * 10 + [2.0] * 8))
    assert 50.0 < slowing < 100.0
    plain = 1800 / (10 * 1.0 + 8 * 2.0)  # all steady chunks alike: 69 items/s
    assert slowing < plain - 5  # nearer the recent 2 s chunks' 50 items/s


def test_gaps_between_calls_count_but_a_pause_does_not_count_in_full() -> None:
    assert stage_rate(_chunks([1.0] * 6, gap=1.0)) == pytest.approx(50.0)
    paused = _chunks([1.0] * 6)
    late = ChunkTiming(100, paused[-1].finished + 3600, paused[-1].finished + 3601)
    rate = stage_rate([*paused, late])
    assert rate > 100 / (MAX_GAP_SECONDS + 1) * 0.5  # the hour counts as two minutes at most


def test_parallel_drivers_share_the_time() -> None:
    # two drivers, each chunk 2 s, finishing every second: 100 items/s together
    chunks = [ChunkTiming(100, t - 2.0, float(t), warmup=t == 2) for t in range(2, 12)]
    assert stage_rate(chunks) == pytest.approx(100.0)


def test_no_chunks_no_rate() -> None:
    assert stage_rate([]) is None
    assert stage_rate([ChunkTiming(0, 0.0, 1.0)]) is None


@given(
    st.lists(st.floats(min_value=0.01, max_value=100.0), min_size=2, max_size=30),
    st.integers(min_value=1, max_value=5000),
)
def test_the_rate_lies_within_the_chunks_own_rates(durations: list[float], items: int) -> None:
    rate = stage_rate(_chunks(durations, items))
    steady = [items / d for d in durations[1:]]
    assert min(steady) * (1 - 1e-9) <= rate <= max(steady) * (1 + 1e-9)


def test_the_eta_adds_later_stages_and_preparation_and_honours_a_wait() -> None:
    assert eta_seconds(1000, 100.0) == pytest.approx(10.0)
    assert eta_seconds(1000, 100.0, later_stages_seconds=5, preparation_seconds=2) == 17.0
    assert eta_seconds(1000, 100.0, wait_seconds=60.0) == 60.0
    assert eta_seconds(0, None, later_stages_seconds=4.0) == 4.0
    assert eta_seconds(10, None) is None


def test_without_chunks_the_prior_is_the_rate() -> None:
    assert stage_rate([], prior_rate=50.0) == 50.0
    assert stage_rate([], prior_rate=0.0) is None


def test_the_prior_counts_as_k_chunks_against_the_measured_ones() -> None:
    # one chunk at 100 items/s beside a prior of 50 counting as two: seconds per item averaged
    [first] = _chunks([1.0])
    assert stage_rate([first], prior_rate=50.0, prior_chunks=2.0) == pytest.approx(
        1 / ((2 / 50 + 1 / 100) / 3)
    )
    assert stage_rate([first], prior_rate=50.0, prior_chunks=0.0) == pytest.approx(100.0)


@given(
    st.floats(min_value=1.0, max_value=10_000.0),
    st.floats(min_value=1.0, max_value=10_000.0),
    st.integers(min_value=2, max_value=60),
)
def test_the_blend_lies_between_prior_and_measurement_and_the_prior_fades(
    prior: float, measured: float, n: int
) -> None:
    chunks = _chunks([100 / measured] * n)
    blended = stage_rate(chunks, prior_rate=prior)
    assert min(prior, measured) * (1 - 1e-9) <= blended <= max(prior, measured) * (1 + 1e-9)
    more = stage_rate(_chunks([100 / measured] * (n + 10)), prior_rate=prior)
    assert abs(more - measured) <= abs(blended - measured) * (1 + 1e-9) + 1e-9


def test_a_noisy_first_chunk_moves_the_estimate_less_with_a_prior() -> None:
    true_rate = 100.0
    [lucky] = _chunks([0.5])  # twice as fast as the stage really runs
    alone = stage_rate([lucky])
    blended = stage_rate([lucky], prior_rate=true_rate * 0.9)
    assert abs(blended - true_rate) < abs(alone - true_rate) / 2


def test_a_build_left_comes_from_its_own_pace_once_it_has_shown_one() -> None:
    # nothing seen yet: the share left of the prior
    assert build_seconds_left(0.25, progress_seen=0.25, elapsed=1.0, prior_seconds=8.0) == 6.0
    # half the build in 10 s under our eyes: 10 s more
    assert build_seconds_left(
        0.5, progress_seen=0.0, elapsed=10.0, prior_seconds=100.0
    ) == pytest.approx(10.0)
    assert build_seconds_left(1.0, progress_seen=0.0, elapsed=3.0, prior_seconds=9.0) == 0.0


@given(
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1000.0),
    st.floats(min_value=0.0, max_value=1000.0),
)
def test_a_build_left_is_never_negative_and_between_its_two_estimates(
    progress: float, seen: float, elapsed: float, prior: float
) -> None:
    left = build_seconds_left(progress, progress_seen=seen, elapsed=elapsed, prior_seconds=prior)
    assert left >= 0.0
    by_prior = prior * (1 - progress)
    made = progress - seen
    by_pace = elapsed * (1 - progress) / made if made > 0 else by_prior
    assert min(by_prior, by_pace) - 1e-6 <= left <= max(by_prior, by_pace) + 1e-6
