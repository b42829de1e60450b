"""chunkmatch through the service beside string_grouper, on the same synthetic data, in one run.

The same N x N synthetic set (``benchmarks/synthetic.py``: catalog records, perturbed item
copies, a tenth of the items with no counterpart) is matched twice:

- **chunkmatch** as a user runs it: `chunkmatch serve` (embedded PostgreSQL), both CSV
  uploads over HTTP, the job created the moment they answer, driven by back-to-back
  ``/process`` calls, every match read back; timed from the first upload byte to the last
  match, and from job create to completed;
- **string_grouper** (TF-IDF on character 3-grams, sparse top-n cosine; library only: no
  database, no HTTP, data already in memory), ``match_strings(catalog, items)``.

Top-1 accuracy is over the items that have a counterpart: the share whose best catalog
record is the right one. chunkmatch's job runs at threshold 0 so that every item keeps its
best candidate (a plain top-1, as string_grouper's); its hit rate at the default threshold
(what a user gets) is printed too when ``--default-threshold`` is given.

    pip install -e '.[bench]'      # string_grouper: a benchmark dependency only
    .venv/bin/python benchmarks/vs_string_grouper.py --n 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from service_end_to_end import all_matches, check, run_job, server_client, upload_rows  # noqa: E402
from synthetic import make_synthetic  # noqa: E402


def top1(predicted: dict[str, str], gold: dict[str, str | None]) -> float:
    matchable = [i for i, c in gold.items() if c is not None]
    return sum(predicted.get(i) == gold[i] for i in matchable) / len(matchable)


def run_chunkmatch(catalog: list[dict], items: list[dict], threshold: float | None) -> dict:
    with server_client() as (client, _pid):
        project_id = check(client.post("/api/projects", json={"name": "vs"}))["project"]["id"]
        started = time.perf_counter()
        upload_rows(client, project_id, "catalog", catalog)
        upload_rows(client, project_id, "items", items)
        config = {} if threshold is None else {"threshold": threshold}
        run = run_job(client, project_id, config)
        reading = time.perf_counter()
        predicted = all_matches(client, run.job["id"])
        total = time.perf_counter() - started
        read_back = time.perf_counter() - reading
    chunks = run.chunk_times
    return {
        "total": total,
        "job": run.elapsed,
        "read_back": read_back,
        "predicted": predicted,
        "max_over_median": max(chunks) / statistics.median(chunks),
    }


def run_string_grouper(catalog: list[dict], items: list[dict]) -> dict:
    import pandas as pd
    from string_grouper import match_strings

    # the items on the left: string_grouper keeps the top max_n_matches per left string
    left = pd.Series([r["name"] for r in items])
    left_id = pd.Series([r["id"] for r in items])
    right = pd.Series([r["name"] for r in catalog])
    right_id = pd.Series([r["id"] for r in catalog])
    started = time.perf_counter()
    found = match_strings(
        left,
        right,
        master_id=left_id,
        duplicates_id=right_id,
        max_n_matches=1,
        min_similarity=0.01,  # a best record for every item, as chunkmatch at threshold 0
    )
    # each item's best record (in case the output holds more than one row for an item)
    best = found.loc[found.groupby("left_id")["similarity"].idxmax()]
    predicted = dict(zip(best["left_id"], best["right_id"], strict=True))
    return {"total": time.perf_counter() - started, "predicted": predicted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="catalog records and items")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--default-threshold",
        action="store_true",
        help="also run chunkmatch at its default threshold (a second service run)",
    )
    args = parser.parse_args()
    catalog, items, gold = make_synthetic(args.n, args.n, seed=args.seed)
    print(f"synthetic {args.n:,} x {args.n:,}, seed {args.seed}; load {os.getloadavg()}")

    sg = run_string_grouper(catalog, items)
    print(
        f"string_grouper (library, in memory): {sg['total']:.1f} s, "
        f"{args.n / sg['total']:,.0f} items/s, top-1 {top1(sg['predicted'], gold):.3f}"
    )
    cm = run_chunkmatch(catalog, items, threshold=0.0)
    print(
        f"chunkmatch (service, user's path, threshold 0): first upload byte -> last match "
        f"{cm['total']:.1f} s (job create -> completed {cm['job']:.1f} s, the matches read back as CSV {cm['read_back']:.1f} s), "
        f"{args.n / cm['total']:,.0f} items/s, top-1 {top1(cm['predicted'], gold):.3f}; "
        f"max / median chunk {cm['max_over_median']:.2f}"
    )
    print(
        f"chunkmatch is {sg['total'] / cm['total']:.2f}x string_grouper's speed "
        f"(goal >= 2), top-1 {top1(cm['predicted'], gold) - top1(sg['predicted'], gold):+.3f}"
    )
    if args.default_threshold:
        default = run_chunkmatch(catalog, items, threshold=None)
        print(
            f"chunkmatch at its default threshold: {default['total']:.1f} s, correct match "
            f"for {top1(default['predicted'], gold):.3f} of the matchable items"
        )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
