"""How fast the review queue answers for a large job, through the real service (issue 11).

Runs an ``enhanced`` job on a synthetic N x N set (``benchmarks/synthetic.py``) in a
``chunkmatch serve`` of its own, then times ``GET /api/jobs/{id}/review`` (first pages of
50, a page deep in the queue through its cursors, and the first page again after
decisions), and ``POST`` of one decision. Also prints how many rows the job's queue holds.
Goal: the queue answers in < 200 ms for a 100k-item job.

    .venv/bin/python benchmarks/review_queue_speed.py --n 100000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from service_end_to_end import check, run_job, server_client, upload_rows  # noqa: E402
from synthetic import make_synthetic  # noqa: E402

ROUNDS = 20


def timed(fn) -> tuple[float, dict]:
    started = time.perf_counter()
    answer = fn()
    return 1000 * (time.perf_counter() - started), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    catalog, items, _ = make_synthetic(args.n, args.n, seed=args.seed)
    with server_client() as (client, _pid):
        project_id = check(client.post("/api/projects", json={"name": "queue"}))["project"]["id"]
        upload_rows(client, project_id, "catalog", catalog)
        upload_rows(client, project_id, "items", items)
        run = run_job(client, project_id, {})
        job = run.job
        print(
            f"{job['totalItems']:,} items, {job['matchesFound']:,} matches, job "
            f"{run.elapsed:.1f}s ({job['totalItems'] / run.elapsed:,.0f} items/s)"
        )
        path = f"/api/jobs/{job['id']}/review"

        def page(cursor: str | None = None, limit: int = 50) -> dict:
            params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            return check(client.get(path, params=params))

        first = [timed(page)[0] for _ in range(ROUNDS)]
        cursor, depth = None, 0
        for _ in range(20):  # 20 pages of 500 deep
            answer = page(cursor, 500)
            cursor, depth = answer["nextCursor"], depth + len(answer["pairs"])
            if cursor is None:
                break
        deep = [timed(lambda: page(cursor))[0] for _ in range(ROUNDS)] if cursor else []
        pairs = page(limit=ROUNDS)["pairs"]
        posts = []
        for p in pairs:
            decision = {"itemId": p["itemId"], "catalogId": p["catalogId"], "decision": "match"}
            posts.append(
                timed(lambda d=decision: check(client.post(path, json={"decisions": [d]})))[0]
            )
        after = [timed(page)[0] for _ in range(ROUNDS)]

        def summary(ms: list[float]) -> str:
            return f"median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms"

        print(f"GET review, first page of 50: {summary(first)}")
        if deep:
            print(f"GET review, a page of 50 after {depth:,} pairs: {summary(deep)}")
        print(f"POST review, one decision (with the refit): {summary(posts)}")
        print(f"GET review, first page after {len(posts)} decisions: {summary(after)}")


if __name__ == "__main__":
    main()
