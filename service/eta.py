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
  recent chunk weighs most, each older one :data:`DECAY` times less), weighted by items.

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


def stage_rate(chunks: Sequence[ChunkTiming], *, decay: float = DECAY) -> float | None:
    """Items per second of a stage from its committed chunks (any order); None without any.

    >>> stage_rate([ChunkTiming(100, 0.0, 10.0, warmup=True), ChunkTiming(100, 10.0, 11.0)])
    100.0
    """
    ordered = sorted(chunks, key=lambda c: c.finished)
    timed: list[tuple[int, float, bool]] = []
    previous: float | None = None
    for chunk in ordered:
        timed.append((chunk.items, chunk_seconds(chunk, previous), chunk.warmup))
        previous = chunk.finished
    steady = [t for t in timed if not t[2] and t[0] > 0]
    used = steady or [t for t in timed if t[0] > 0]
    if not used:
        return None
    weight_sum = seconds = items = 0.0
    weight = 1.0
    for n, secs, _ in reversed(used):  # newest first
        seconds += weight * secs
        items += weight * n
        weight_sum += weight
        weight *= decay
    return items / seconds if seconds > 0 else None


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
