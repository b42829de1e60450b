"""How honest the ETA is: a steady job through the real service, its ETA after every chunk
against the time that really remained.

Starts `chunkmatch serve` (as benchmarks/service_end_to_end.py does), uploads a synthetic
catalog and items, creates an `enhanced` job and drives it with back-to-back `/process`
calls. After each call it notes the job's `etaSeconds`; once the job is complete it prints
the relative error, (ETA given - real remaining) / real remaining, after the first chunk
and at 10 %, 50 % and 90 % of the items (and, with ``--no-wait``, the ETA the first
answer gave while the job was still being prepared), beside what the former estimator (items over the
wall clock of the last 10 chunks) would have said at the same points. Goals: within 25 %
after the first chunk, within 10 % from 10 % of the items on.

    .venv/bin/python benchmarks/eta_accuracy.py --items 100000 --catalog 20000
    .venv/bin/python benchmarks/eta_accuracy.py --items 100000 --catalog 20000 --no-wait
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from service_end_to_end import check, server_client, upload_rows, wait_for_log  # noqa: E402
from synthetic import make_synthetic  # noqa: E402

FORMER_WINDOW = 10  # chunks the former estimator averaged over


def _former_eta(
    calls: list[tuple[float, float, int]], upto: int, total: int, processed: int
) -> float:
    """The former ETA after call ``upto``: remaining items over the rate of the last 10
    chunks, from the first one's start to the last one's end."""
    window = calls[max(0, upto - FORMER_WINDOW + 1) : upto + 1]
    items = sum(n for _, _, n in window)
    seconds = window[-1][1] - window[0][0]
    return (total - processed) / (items / seconds) if items and seconds > 0 else float("nan")


def run(args: argparse.Namespace) -> None:
    catalog, items, _ = make_synthetic(args.catalog, args.items, seed=args.seed)
    with server_client() as (client, pid):
        project = check(client.post("/api/projects", json={"name": "eta"}))["project"]["id"]
        upload_rows(client, project, "catalog", catalog)
        upload_rows(client, project, "items", items)
        if not args.no_wait:
            wait_for_log(pid, "built the peers of project")
        config = {"chunkSize": args.chunk_size} if args.chunk_size else {}
        job = check(
            client.post(
                "/api/jobs/create",
                json={"projectId": project, "jobType": "enhanced", "config": config},
            )
        )["job"]
        total = job["totalItems"]
        # (call start, call end, items of the chunk), and (end, processed, ETA given)
        calls: list[tuple[float, float, int]] = []
        given: list[tuple[float, int, float | None]] = []
        while job["status"] in ("pending", "processing"):
            t = time.monotonic()
            before = job["processedItems"]
            job = check(client.post(f"/api/jobs/{job['id']}/process"))["job"]
            end = time.monotonic()
            calls.append((t, end, job["processedItems"] - before))
            given.append((end, job["processedItems"], job["etaSeconds"]))
        if job["status"] != "completed":
            raise SystemExit(f"job ended {job['status']}: {job['error']}")
        done = given[-1][0]
        load = os.getloadavg()
        print(
            f"{total:,} items x {args.catalog:,} catalog records, {len(calls)} chunks of "
            f"{job['chunkSize']}, {done - calls[0][0]:.1f}s; "
            + ("job created at once (first chunk builds the index); " if args.no_wait else "")
            + (f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        )
        print(
            f"{'point':>18s} {'processed':>10s} {'real left':>10s} {'ETA':>8s} {'error':>7s} "
            f"{'former':>8s} {'error':>7s}"
        )
        # preparing answers (--no-wait) run no chunk; chunk 1 is the first answer that did
        first = next(i for i, g in enumerate(given) if g[1] > 0)
        points = [("after chunk 1", first)]
        if first > 0 and given[0][2] is not None:
            points.insert(0, ("preparing", 0))
        for share in (0.1, 0.5, 0.9):
            n = next(i for i, g in enumerate(given) if g[1] >= share * total)
            points.append((f"at {share:.0%}", n))
        for label, n in points:
            end, processed, eta = given[n]
            real = done - end
            former = _former_eta(calls, n, total, processed) if processed else float("nan")
            err = (eta - real) / real if eta is not None and real > 0 else float("nan")
            ferr = (former - real) / real if real > 0 else float("nan")
            print(
                f"{label:>18s} {processed:>10,} {real:>9.1f}s {eta or float('nan'):>7.1f}s "
                f"{err:>+7.1%} {former:>7.1f}s {ferr:>+7.1%}"
            )
        if args.verbose:
            print("chunk call ms:", " ".join(f"{(e - s) * 1000:.0f}" for s, e, _ in calls))
        worst = max(
            abs((eta - (done - end)) / (done - end))
            for end, processed, eta in given
            if eta is not None
            and processed >= 0.1 * total
            and done - end > 0
            and processed <= 0.9 * total
        )
        print(f"worst error between 10 % and 90 % of the items: {worst:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--catalog", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="print every chunk call's time")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="create the job the moment the uploads answer (its first chunk builds the index)",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
