"""Build time, memory and matching throughput of ``CatalogIndex`` on synthetic data.

Run: ``.venv/bin/python benchmarks/matching_speed.py [--n 20000] [--items N] [--chunk 1000]``;
``--catalog-n 1000000 --items 20000`` measures a large catalog with fewer items.
Items are matched in chunks, as the service does; the per-chunk rate is printed
for the first and last chunks so growth with the number of chunks shows. Memory
is the process's peak resident set size (Linux ``ru_maxrss``) before and after
the build, and ``CatalogIndex.nbytes``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.matching_quality import accepted_at  # noqa: E402
from benchmarks.synthetic import make_synthetic  # noqa: E402
from matching import DEFAULT_THRESHOLD, CatalogIndex  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="catalog records")
    parser.add_argument(
        "--catalog-n", type=int, default=None, help="catalog records (overrides --n)"
    )
    parser.add_argument("--items", type=int, default=None, help="items (default: --n)")
    parser.add_argument("--chunk", type=int, default=1000, help="items per match() call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peers",
        action="store_true",
        help="build the job's peers once (as the service does) instead of per call",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=0,
        metavar="K",
        help="also time candidates_many (top K per item, the job's peers) over the items",
    )
    args = parser.parse_args()
    n_catalog = args.catalog_n or args.n
    n_items = args.items or args.n

    started = time.perf_counter()
    catalog, items, gold = make_synthetic(n_catalog, n_items, args.seed)
    print(
        f"synthetic data: {len(catalog)} catalog x {len(items)} items "
        f"in {time.perf_counter() - started:.1f} s"
    )

    catalog_rows = [(r["id"], r["name"]) for r in catalog]
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    cpu_started = time.process_time()
    index = CatalogIndex.build(catalog_rows)
    build = time.perf_counter() - started
    build_cpu = time.process_time() - cpu_started
    print(f"build: {build:.2f} s ({build_cpu:.2f} CPU-s), nbytes {index.nbytes / 1e6:.1f} MB")
    rss_after = _peak_rss_mb()
    print(
        f"peak RSS: {rss_before:.0f} MB before build (data), {rss_after:.0f} MB after; "
        f"build added at most {rss_after - rss_before:.0f} MB"
    )

    rows = [(r["id"], r["name"]) for r in items]
    peers = None
    if args.peers:
        started = time.perf_counter()
        peers = index.peers(rows)
        print(
            f"peers of {len(rows):,} items: {time.perf_counter() - started:.1f} s, "
            f"nbytes {peers.nbytes / 1e6:.0f} MB, peak RSS {_peak_rss_mb():.0f} MB"
        )
    results = []
    chunk_rates = []
    started = time.perf_counter()
    cpu_started = time.process_time()
    for start in range(0, len(rows), args.chunk):
        chunk = rows[start : start + args.chunk]
        t0 = time.perf_counter()
        results.extend(index.match(chunk, threshold=0.0, peers=peers))
        chunk_rates.append(len(chunk) / (time.perf_counter() - t0))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    tenth = max(1, len(chunk_rates) // 10)
    early = statistics.median(chunk_rates[:tenth])
    late = statistics.median(chunk_rates[-tenth:])
    print(
        f"match: {len(rows) / elapsed:,.0f} items/s wall, {len(rows) / cpu:,.0f} items per CPU-second"
    )
    print(f"peak RSS after matching: {_peak_rss_mb():.0f} MB")
    print(
        f"chunks of {args.chunk}: median rate of the first tenth {early:,.0f}/s, "
        f"of the last tenth {late:,.0f}/s (per-chunk cost should not grow)"
    )

    if args.candidates:
        started = time.perf_counter()
        found = []
        for start in range(0, len(rows), args.chunk):
            chunk = rows[start : start + args.chunk]
            found.extend(index.candidates_many(chunk, k=args.candidates, peers=peers))
        elapsed = time.perf_counter() - started
        accepted = {r.item_id: r for r in results if r.score >= DEFAULT_THRESHOLD}
        same = sum(bool(f) and accepted.get(f[0].item_id) == f[0] for f in found)
        print(
            f"candidates_many, top {args.candidates}: {len(rows) / elapsed:,.0f} items/s; "
            f"its first candidate is match()'s accepted pair (same record, score, "
            f"explanation) for {same:,} of {len(accepted):,} accepted matches"
        )

    best = {r.item_id: r for r in results}
    with_gold = [i for i, c in gold.items() if c is not None]
    hits = sum(best.get(i) is not None and best[i].catalog_id == gold[i] for i in with_gold)
    print(f"hit@1: {hits / len(with_gold):.3f} over {len(with_gold)} items with a counterpart")
    # the service's acceptance: beside the others of their record, over the whole job
    accepted = accepted_at(results, DEFAULT_THRESHOLD)
    correct = sum(gold.get(r.item_id) == r.catalog_id for r in accepted)
    precision = correct / len(accepted) if accepted else 0.0
    recall = correct / len(with_gold)
    print(
        f"at default threshold {DEFAULT_THRESHOLD}: precision {precision:.3f}, recall {recall:.3f}"
    )


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
