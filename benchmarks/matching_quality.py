"""Precision, recall and F1 of ``CatalogIndex.match`` on the benchmark sets and their
open-world variants (``benchmarks/open_world.py``: two thirds of the matchable items
lose their counterpart).

Run: ``.venv/bin/python benchmarks/matching_quality.py [--threshold 0.6] [--sweep]``.
A predicted pair is correct when it is in the gold file; recall is over all gold
pairs. The default threshold is the library's, the same for every set; ``tuned`` is
the best F1 any one threshold reaches on that very set (an upper bound no default
can claim). Leave-one-set-out figures and the reliability table come from
``benchmarks/fit_scoring.py``.
``cand@10`` is candidate recall: the share of items with a gold pair for which a
gold catalog record is among ``index.candidates(text, k=10)``.

Two harder variants of each open-world set (``benchmarks/open_world.py``):
``+ siblings`` adds to the catalog, before the counterparts are removed, up to two
sibling articles per record (its model codes a digit apart, sometimes a quantity or
a colour too), so an item whose record is gone still finds its siblings;
``+ fragments`` adds one-word items (a tenth as many as the set has) that no record
answers. "lured" counts the matches to a sibling or of a one-word item.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.datasets import ALL_SETS, load  # noqa: E402
from benchmarks.open_world import MatchSet, open_world, with_fragments, with_siblings  # noqa: E402
from matching import DEFAULT_THRESHOLD, CatalogIndex, MatchResult  # noqa: E402
from matching.claims import withdraw_contested  # noqa: E402


def precision_recall_f1(
    predicted: list[MatchResult], gold: set[tuple[str, str]]
) -> tuple[float, float, float]:
    """Score predicted pairs against the gold pairs."""
    correct = sum((r.item_id, r.catalog_id) in gold for r in predicted)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def accepted_at(results: list[MatchResult], threshold: float) -> list[MatchResult]:
    """What a job's default acceptance keeps of its items' best candidates ``results`` at
    ``threshold``: those reaching it, less the ones withdrawn beside the others of their
    record (:func:`matching.claims.withdraw_contested`, as :meth:`CatalogIndex.match` and
    the service do at the job's threshold)."""
    return withdraw_contested([r for r in results if r.score >= threshold], threshold)[0]


def candidate_recall(
    index: CatalogIndex, items: list[tuple[str, str]], gold: set[tuple[str, str]], k: int = 10
) -> float:
    """Share of matchable items with a gold record among their ``k`` candidates."""
    wanted: dict[str, set[str]] = {}
    for item_id, catalog_id in gold:
        wanted.setdefault(item_id, set()).add(catalog_id)
    matchable = [(i, t) for i, t in items if i in wanted]
    found = sum(any(c in wanted[i] for c, _ in index.candidates(t, k=k)) for i, t in matchable)
    return found / len(matchable) if matchable else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--sweep", action="store_true", help="also print F1 over thresholds")
    args = parser.parse_args()
    print(f"threshold {args.threshold:.2f}")
    print(
        f"{'data set':40} {'P':>6} {'R':>6} {'F1':>6} {'tuned':>6} {'cand@10':>7}  "
        "methods                         secs"
    )
    sets = []
    for spec in ALL_SETS:
        base = MatchSet(spec.name, *load(spec))
        sets += [base, open_world(base)]
        if spec.name != "Abt-Buy":  # the standard-fields form of Abt-Buy stands for it
            sets += [open_world(with_siblings(base)), with_fragments(base)]
    for data in sets:
        items, catalog, gold = data.items, data.catalog, data.gold
        started = time.perf_counter()
        index = CatalogIndex.build(catalog)
        results = index.match(items, threshold=0.0)
        elapsed = time.perf_counter() - started
        chosen = accepted_at(results, args.threshold)
        p, r, f1 = precision_recall_f1(chosen, gold)
        tuned = max(
            precision_recall_f1(accepted_at(results, t / 100), gold)[2] for t in range(1, 100)
        )
        methods = Counter(x.method for x in chosen)
        summary = ", ".join(f"{m} {n}" for m, n in sorted(methods.items()))
        lures = sum(
            x.catalog_id.startswith("sibling-") or x.item_id.startswith("fragment-") for x in chosen
        )
        if lures:
            summary += f" ({lures} lured)"
        recall_at_10 = candidate_recall(index, items, gold)
        print(
            f"{data.name:40} {p:6.3f} {r:6.3f} {f1:6.3f} {tuned:6.3f} {recall_at_10:7.3f}  "
            f"{summary:30}  {elapsed:5.2f}"
        )
        if args.sweep:
            line = []
            for t in [x / 20 for x in range(6, 19)]:
                line.append(f"{t:.2f}:{precision_recall_f1(accepted_at(results, t), gold)[2]:.3f}")
            print("   ", " ".join(line))


if __name__ == "__main__":
    main()
