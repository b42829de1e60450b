"""Where a chunk's matching time goes as the catalog grows: CPU per item, section by section.

For each catalog size, builds the synthetic catalog's ``CatalogIndex`` and the peers of
``--items`` items (as the service does for a job), then matches the items in chunks of
``--chunk`` under cProfile with a CPU-time clock (threads of sparse_dot_topn and RapidFuzz
count), and prints each section's CPU microseconds per item. Sections are the cumulative
time of the functions named in ``SECTIONS``; they nest (retrieval is inside shortlist).

    .venv/bin/python benchmarks/scale_profile.py --catalog 100000 300000 1000000 --items 4000
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.synthetic import make_synthetic  # noqa: E402
from matching import CatalogIndex  # noqa: E402

SECTIONS = (
    # (label, module file suffix, function name)
    ("match (whole)", "matching/index.py", "_match"),
    ("  prepare items", "matching/index.py", "_prepare"),
    ("  score", "matching/ranking.py", "score"),
    ("    shortlist", "matching/ranking.py", "_shortlist"),
    ("      retrieve", "matching/ranking.py", "_retrieve"),
    ("        top_k_matrix", "matching/retrieval.py", "top_k_matrix"),
    ("          kept terms", "matching/retrieval.py", "_kept_terms"),
    ("          product top-k", "matching/retrieval.py", "_product_top_k"),
    ("          replace rows", "matching/retrieval.py", "_replace_rows"),
    ("        exact cosine", "matching/ranking.py", "_char_cosine"),
    ("        best per item", "matching/ranking.py", "_best_per_item"),
    ("    rapidfuzz pairs", "matching/ranking.py", "_pairwise"),
    ("    code agreement", "matching/similarity.py", "code_agreement"),
    ("    number agreement", "matching/similarity.py", "number_agreement"),
    ("    variant signals", "matching/variants.py", "variant_signals"),
    ("    marks", "matching/variants.py", "marks"),
    ("    lead coverage", "matching/ranking.py", "_lead_coverage"),
    ("    lead vectors", "matching/ranking.py", "_lead_vectors"),
    ("    rival cosine", "matching/ranking.py", "_rival_cosine"),
    ("    features/logits", "matching/scoring.py", "logits"),
    ("  explanations", "matching/scoring.py", "explain_rows"),
    ("  reasons", "matching/scoring.py", "describe"),
)


def profile_size(n_catalog: int, n_items: int, chunk: int, seed: int) -> dict[str, float]:
    """CPU seconds per item of each section at a catalog of ``n_catalog`` records."""
    catalog, items, gold = make_synthetic(n_catalog, n_items, seed)
    started, cpu = time.perf_counter(), time.process_time()
    index = CatalogIndex.build([(r["id"], r["name"]) for r in catalog])
    print(
        f"\n{n_catalog:,} records: build {time.perf_counter() - started:.0f} s "
        f"({time.process_time() - cpu:.0f} CPU-s), peak RSS {_peak_rss_mb():,.0f} MB"
    )
    rows = [(r["id"], r["name"]) for r in items]
    started, cpu = time.perf_counter(), time.process_time()
    peers = index.peers(rows)
    print(
        f"peers of {len(rows):,} items: {time.perf_counter() - started:.1f} s "
        f"({time.process_time() - cpu:.1f} CPU-s)"
    )
    del catalog
    gc.collect()
    profiler = cProfile.Profile(time.process_time)
    results = []
    chunk_cpu = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        c = time.process_time()
        profiler.enable()
        results.extend(index.match(part, threshold=0.0, peers=peers))
        profiler.disable()
        chunk_cpu.append(time.process_time() - c)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for label, suffix, name in SECTIONS:
        total = sum(
            v[3]
            for (file, _, func), v in stats.items()
            if func == name and file.replace("\\", "/").endswith(suffix)
        )
        out[label] = total / len(rows)
    best = {r.item_id: r.catalog_id for r in results}
    with_gold = [i for i, c in gold.items() if c is not None]
    hits = sum(best.get(i) == gold[i] for i in with_gold)
    print(
        f"chunks of {chunk}: CPU-s per chunk {', '.join(f'{c:.2f}' for c in chunk_cpu)}; "
        f"hit@1 {hits / len(with_gold):.3f} over {len(with_gold):,} items"
    )
    out["hit@1"] = hits / len(with_gold)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table = {n: profile_size(n, args.items, args.chunk, args.seed) for n in args.catalog}
    print(f"\nCPU microseconds per item ({args.items:,} items, chunks of {args.chunk:,})")
    print(f"{'section':28}" + "".join(f"{n:>12,}" for n in args.catalog))
    for label, *_ in SECTIONS:
        print(f"{label:28}" + "".join(f"{1e6 * table[n][label]:12.0f}" for n in args.catalog))
    print(f"{'hit@1':28}" + "".join(f"{table[n]['hit@1']:12.3f}" for n in args.catalog))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
