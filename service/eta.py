"""The rate a job's current stage runs at, for its ETA: a pure function of its chunks' timings.

An average over the last chunks is dominated by one slow first chunk (the index, the
peers, a cold process) and says "in 3 min" with 8 s left. Instead:

- each chunk's time is the wall clock since the chunk before it finished (so the gaps
  between a slow client's calls count, and parallel drivers' chunks share the time), but a
  gap longer than :data:`MAX_GAP_SECONDS` (a paused job, a stopped client) counts only up
  to that, and the time the chunk spent preparing (building the index or peers) does not
  count: it is not spent again;
- the first :data:`WARMUP_CHUNKS` chunks of the stage are left out once later ones exist;
- the rest are averaged as seconds per item with exponentially decaying weights (the most
  recent chunk weighs most, each older one :data:`DECAY` times less), weighted by items;
- that average is blended with a prior rate (what the same stage ran at in recent jobs) as
  a Bayesian average in which the prior counts as :data:`PRIOR_CHUNKS` chunks, so one noisy
  first chunk does not decide the estimate and the prior fades as chunks accumulate.

Before the first chunk, while the job's index and peers are built, the ETA is the build's
remaining time (:func:`build_seconds_left`) plus the job's items at the prior rate.

Averaging seconds per item, not items per second, keeps a chunk of twice the items worth
twice as much and makes remaining items x seconds per item the ETA itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WARMUP_CHUNKS = 1
"""Chunks at the start of a stage left out of its rate once later chunks exist."""
DECAY = 0.9
"""Weight of each older chunk relative to the next newer one (about 10 chunks' memory)."""
MAX_GAP_SECONDS = 120.0
"""Longest idle time before a chunk that still counts towards its time (a pause does not)."""
MIN_CHUNK_SECONDS = 0.001
PRIOR_CHUNKS = 2.0
"""How many measured chunks a stage's prior rate (recent jobs' rate of the same stage, see
:func:`stage_rate`) counts for: after one chunk it weighs two thirds, after 20 a tenth."""
DEFAULT_PRIOR_CHUNKS = 0.0
"""What a default prior rate (a constant, not this deployment's history) counts for once a
chunk is measured: nothing. A constant guessed on another machine pulled the first chunks'
estimate 40 % off on a quiet 2-core machine (``benchmarks/eta_accuracy.py``); it only gives
an ETA before the first chunk."""
MIN_BUILD_PROGRESS = 0.02
"""Progress a build must have made under our eyes before its own pace is extrapolated."""


@dataclass(frozen=True)
class ChunkTiming:
    """One committed chunk of a stage: its items and when it ran (epoch seconds)."""

    items: int
    started: float
    finished: float
    prepare_seconds: float = 0.0  # of its run, the time spent building the index or peers
    warmup: bool = False  # one of the stage's first chunks


def chunk_seconds(chunk: ChunkTiming, previous_finished: float | None) -> float:
    """The wall-clock time a chunk accounts for: since the previous chunk finished (at most
    :data:`MAX_GAP_SECONDS` before it started), less its preparation."""
    start = chunk.started
    if previous_finished is not None:
        start = max(previous_finished, chunk.started - MAX_GAP_SECONDS)
    elapsed = chunk.finished - start - chunk.prepare_seconds
    return max(MIN_CHUNK_SECONDS, elapsed)


def stage_rate(
    chunks: Sequence[ChunkTiming],
    *,
    decay: float = DECAY,
    prior_rate: float | None = None,
    prior_chunks: float = PRIOR_CHUNKS,
) -> float | None:
    """Items per second of a stage from its committed chunks (any order), blended with
    ``prior_rate`` (counting as ``prior_chunks`` chunks); the prior alone without chunks,
    None without either.

    >>> stage_rate([ChunkTiming(100, 0.0, 10.0, warmup=True), ChunkTiming(100, 10.0, 11.0)])
    100.0
    >>> stage_rate([ChunkTiming(100, 0.0, 1.0)], prior_rate=50.0, prior_chunks=1.0)
    66.66666666666667
    """
    prior = prior_rate if prior_rate is not None and prior_rate > 0 else None
    ordered = sorted(chunks, key=lambda c: c.finished)
    timed: list[tuple[int, float, bool]] = []
    previous: float | None = None
    for chunk in ordered:
        timed.append((chunk.items, chunk_seconds(chunk, previous), chunk.warmup))
        previous = chunk.finished
    steady = [t for t in timed if not t[2] and t[0] > 0]
    used = steady or [t for t in timed if t[0] > 0]
    if not used:
        return prior
    weight_sum = seconds = items = 0.0
    weight = 1.0
    for n, secs, _ in reversed(used):  # newest first
        seconds += weight * secs
        items += weight * n
        weight_sum += weight
        weight *= decay
    if seconds <= 0:
        return prior
    if prior is None:
        return items / seconds
    # seconds per item, the prior counting as prior_chunks chunks against len(used)
    per_item = (prior_chunks / prior + len(used) * seconds / items) / (prior_chunks + len(used))
    return 1.0 / per_item


def build_seconds_left(
    progress: float, *, progress_seen: float, elapsed: float, prior_seconds: float
) -> float:
    """Seconds a build (the catalog index, the peers) still takes at ``progress`` (0..1):
    its own pace since we first saw it at ``progress_seen`` ``elapsed`` seconds ago, once it
    has made :data:`MIN_BUILD_PROGRESS` of progress meanwhile; until then the share left of
    ``prior_seconds`` (the whole build at known rates per record), the two blended as the
    build's own pace takes over.

    >>> build_seconds_left(0.5, progress_seen=0.0, elapsed=10.0, prior_seconds=100.0)
    10.0
    """
    progress = min(max(progress, 0.0), 1.0)
    left = 1.0 - progress
    by_prior = prior_seconds * left
    made = progress - progress_seen
    if made < MIN_BUILD_PROGRESS or elapsed <= 0:
        return by_prior
    by_pace = elapsed * left / made
    trust = min(1.0, made / (10 * MIN_BUILD_PROGRESS))
    return trust * by_pace + (1.0 - trust) * by_prior


def eta_seconds(
    remaining_items: int,
    rate: float | None,
    *,
    later_stages_seconds: float = 0.0,
    preparation_seconds: float = 0.0,
    wait_seconds: float | None = None,
) -> float | None:
    """Seconds until a job completes: its stage's remaining items at ``rate``, the stages
    after it, work known to come before its next chunk (``preparation_seconds``), and no
    less than a provider's ``wait_seconds``. None when there is no rate yet and items remain.

    >>> eta_seconds(1000, 100.0, later_stages_seconds=5.0)
    15.0
    """
    if remaining_items <= 0:
        stage = 0.0
    elif rate:
        stage = remaining_items / rate
    else:
        return None if wait_seconds is None else wait_seconds
    total = stage + later_stages_seconds + preparation_seconds
    return max(total, wait_seconds or 0.0)
