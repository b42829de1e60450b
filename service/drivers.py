"""Server-side drivers' shared loop: advance runnable jobs, most important first, in a budget.

Used by the cron route (``POST /api/jobs/process``) and by ``chunkmatch worker``. It holds
no state of its own: which jobs are runnable, and which chunk is next, is PostgreSQL's.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from service.engine import PREPARATION_WAIT_SECONDS, Engine
from service.store import Store


@dataclass
class JobTally:
    job_id: str
    chunks: int = 0
    items: int = 0
    matches: int = 0
    status: str = ""
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "chunks": self.chunks,
            "items": self.items,
            "matches": self.matches,
            "status": self.status,
            "message": self.message,
        }


@dataclass
class DriveReport:
    jobs: dict[str, JobTally] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    @property
    def chunks(self) -> int:
        return sum(t.chunks for t in self.jobs.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "success": True,
            "chunks": self.chunks,
            "items": sum(t.items for t in self.jobs.values()),
            "matches": sum(t.matches for t in self.jobs.values()),
            "elapsedMs": round(self.elapsed_seconds * 1000),
            "jobs": [t.to_json() for t in self.jobs.values()],
        }


async def advance_runnable_jobs(
    engine: Engine, store: Store, *, max_jobs: int, budget_seconds: float
) -> DriveReport:
    """Advance up to ``max_jobs`` runnable jobs, one chunk each per round, until the budget
    is spent or nothing is left to do. A chunk is started only when the time left is at
    least what that job's previous chunk took, so the budget is overrun rarely and little.
    """
    started = time.monotonic()
    report = DriveReport()
    last_chunk_seconds: dict[str, float] = {}
    done: set[str] = set()
    while True:
        progressed = False
        job_ids = [j for j in await store.runnable_jobs(limit=max_jobs) if str(j) not in done]
        for job_id in job_ids:
            left = budget_seconds - (time.monotonic() - started)
            if left <= 0 or left < last_chunk_seconds.get(str(job_id), 0.0):
                continue
            t0 = time.monotonic()
            outcome = await engine.process_next_chunk(
                uuid.UUID(str(job_id)), preparation_wait=min(left, PREPARATION_WAIT_SECONDS)
            )
            if outcome is None:
                continue
            tally = report.jobs.setdefault(outcome.job.id, JobTally(outcome.job.id))
            tally.status, tally.message = outcome.job.status, outcome.message
            if outcome.preparing:  # it waited for the job's index: its chunks follow
                progressed = True
            elif outcome.processed:
                progressed = True
                tally.chunks += 1
                tally.items += outcome.processed
                tally.matches += outcome.new_matches
                last_chunk_seconds[outcome.job.id] = time.monotonic() - t0
            else:
                done.add(outcome.job.id)  # busy, waiting or finished: not again this call
        if not progressed or time.monotonic() - started >= budget_seconds:
            break
    report.elapsed_seconds = time.monotonic() - started
    return report
