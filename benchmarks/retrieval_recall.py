"""Where top-1 errors come from on the synthetic set: retrieval, shortlist or ranking.

Run: ``.venv/bin/python benchmarks/retrieval_recall.py --catalog-n 1000000 --items 20000``.
For the items that have a counterpart and are not matched by the exact stage, prints

- retrieval recall@k: the share whose gold record is among the first ``k`` records
  by n-gram retrieval alone, for several ``k``, and for the candidates the matcher
  retrieves (``k`` = 30, widened for dense families);
- shortlist recall: the gold record among the few candidates every signal scores;
- hit@1 of ``CatalogIndex.match`` (chunks of ``--chunk`` items, each its own peers,
  as ``benchmarks/matching_speed.py`` does), and how its misses split: gold not
  retrieved, retrieved but not shortlisted, shortlisted but ranked below another.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.synthetic import make_synthetic  # noqa: E402
from matching import CatalogIndex  # noqa: E402
from matching.codes import own_codes  # noqa: E402
from matching.normalise import normalise_text  # noqa: E402
from matching.ranking import RERANK_CANDIDATES  # noqa: E402

RECALL_KS = (1, 5, 30, 150, 500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog-n", type=int, default=100_000, help="catalog records")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=1000, help="items per match() call")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    catalog, items, gold = make_synthetic(args.catalog_n, args.items, args.seed)
    started, cpu = time.perf_counter(), time.process_time()
    index = CatalogIndex.build([(r["id"], r["name"]) for r in catalog])
    print(
        f"{len(catalog):,} catalog x {len(items):,} items; build {time.perf_counter() - started:.1f} s "
        f"({time.process_time() - cpu:.1f} CPU-s), peak RSS {_peak_rss_mb():,.0f} MB"
    )
    scorer = index._scorer
    assert scorer is not None
    row_of = {r["id"]: n for n, r in enumerate(catalog)}
    keys = [normalise_text(r["name"]) for r in items]
    exact = [bool(k) and k in index._exact_rows for k in keys]
    # the fuzzy stage's items: with a counterpart, not answered by the exact stage
    chosen = [n for n, r in enumerate(items) if gold[r["id"]] is not None and not exact[n]]
    wanted = np.array([row_of[gold[items[n]["id"]]] for n in chosen], dtype=np.int64)
    print(f"{len(chosen):,} items with a counterpart left to the fuzzy stage")

    found = {k: np.zeros(len(chosen), dtype=bool) for k in (*RECALL_KS, "matcher")}
    shortlisted = np.zeros(len(chosen), dtype=bool)
    n_retrieved = 0
    for start in range(0, len(chosen), 1024):
        part = chosen[start : start + 1024]
        batch_keys = [keys[n] for n in part]
        target = wanted[start : start + 1024]
        chars = scorer.char.transform(batch_keys)
        for k in RECALL_KS:
            top = scorer.retriever.top_k_matrix(chars, k=k)
            found[k][start : start + len(part)] = _contains(top.indptr, top.indices, target)
        items_of, rows, _ = scorer._retrieve(chars, 30)
        n_retrieved += len(rows)
        found["matcher"][start : start + len(part)] = _contains_pairs(items_of, rows, target)
        code_rows = [index._unique_code_row(own_codes(items[n]["name"])) for n in part]
        s_items, s_rows, *_ = scorer._shortlist(
            chars, scorer.words.transform(batch_keys), code_rows, RERANK_CANDIDATES
        )
        shortlisted[start : start + len(part)] = _contains_pairs(s_items, s_rows, target)
    for k in RECALL_KS:
        print(f"retrieval recall@{k}: {found[k].mean():.4f}", flush=True)
    print(
        f"retrieval recall of the matcher's candidates (30, dense families wider; "
        f"{n_retrieved / len(chosen):.1f} per item): {found['matcher'].mean():.4f}"
    )
    print(f"shortlist recall@{RERANK_CANDIDATES}: {shortlisted.mean():.4f}")

    rows = [(r["id"], r["name"]) for r in items]
    best = {}
    cpu = time.process_time()
    for start in range(0, len(rows), args.chunk):
        best.update(
            (m.item_id, m.catalog_id)
            for m in index.match(rows[start : start + args.chunk], threshold=0.0)
        )
    match_cpu = time.process_time() - cpu
    with_gold = [i for i, c in gold.items() if c is not None]
    hits = sum(best.get(i) == gold[i] for i in with_gold)
    print(
        f"hit@1: {hits / len(with_gold):.4f} over {len(with_gold):,} items with a counterpart; "
        f"match {len(rows) / match_cpu:,.0f} items per CPU-second"
    )
    right = np.array([best.get(items[n]["id"]) == gold[items[n]["id"]] for n in chosen])
    misses = ~right
    print(
        f"fuzzy-stage misses {misses.sum():,}: not retrieved {(misses & ~found['matcher']).sum():,}, "
        f"retrieved but not shortlisted {(misses & found['matcher'] & ~shortlisted).sum():,}, "
        f"shortlisted but not first {(misses & shortlisted).sum():,}"
    )
    print(f"peak RSS {_peak_rss_mb():,.0f} MB")


def _contains(indptr: np.ndarray, indices: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Whether row i of a CSR structure holds column ``target[i]``."""
    items = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return _contains_pairs(items, indices.astype(np.int64), target)


def _contains_pairs(items: np.ndarray, rows: np.ndarray, target: np.ndarray) -> np.ndarray:
    hit = np.zeros(len(target), dtype=bool)
    hit[items[rows == target[items]]] = True
    return hit


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
