"""Fit the logistic match score of ``matching.scoring`` on the benchmark sets.

Run: ``.venv/bin/python benchmarks/fit_scoring.py [--penalty 1.0]``.

For every set it gathers the signals of each shortlisted (item, candidate) pair
that the exact stage leaves, labels a pair positive when it is in the gold file,
and fits one L2-regularised logistic regression on the sets pooled (each set
weighted equally, so the largest does not dominate), its weights bounded so the
score is monotone (no similarity lowers it, a code clash never raises it). The intercept is then moved
so that the default threshold 0.5 gives the best mean F1 over the sets.

It prints the coefficients to paste into ``matching/scoring.py`` and two checks:
F1 per set with the pooled model, and leave-one-set-out F1 (the model fitted on
the other sets only), which is the honest figure for data we have never seen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matching.scoring as scoring  # noqa: E402
from benchmarks.datasets import (  # noqa: E402
    ABT_BUY_STANDARD,
    AMAZON_GOOGLE,
    DBLP_ACM,
    load,
)
from benchmarks.matching_quality import precision_recall_f1  # noqa: E402
from benchmarks.synthetic import make_synthetic  # noqa: E402
from matching import CatalogIndex, extract_codes, normalise_text  # noqa: E402
from matching.ranking import RERANK_CANDIDATES  # noqa: E402

FIT_SETS = (ABT_BUY_STANDARD, AMAZON_GOOGLE, DBLP_ACM)
SYNTHETIC_CATALOG = 20_000
SYNTHETIC_ITEMS = 20_000


def prepared_sets() -> list[Prepared]:
    """The benchmark sets, and a sample of the synthetic hard-negative set."""
    sets = [Prepared(spec.name, *load(spec)) for spec in FIT_SETS]
    catalog, items, gold = make_synthetic(SYNTHETIC_CATALOG, SYNTHETIC_ITEMS, seed=1)
    sets.append(
        Prepared(
            "synthetic 20k x 20k",
            [(r["id"], r["name"]) for r in items],
            [(r["id"], r["name"]) for r in catalog],
            {(i, c) for i, c in gold.items() if c is not None},
        )
    )
    return sets


class Prepared:
    """One set's index, items, gold pairs and labelled candidate-pair features."""

    def __init__(
        self,
        name: str,
        items: list[tuple[str, str]],
        catalog: list[tuple[str, str]],
        gold: set[tuple[str, str]],
    ) -> None:
        self.name = name
        self.items, self.gold = items, gold
        self.index = CatalogIndex.build(catalog)
        ids = [c for c, _ in catalog]
        exact = {normalise_text(t) for _, t in catalog}
        pending = [(i, t) for i, t in self.items if normalise_text(t) not in exact]
        texts = [t for _, t in pending]
        codes = [extract_codes(t) for t in texts]
        forced = [self.index._unique_code_row(c) for c in codes]  # noqa: SLF001 - a fitting tool
        peers = self.index.peers(self.items)
        pairs = self.index._scorer.score(  # noqa: SLF001
            [normalise_text(t) for t in texts],
            codes,
            forced,
            shortlist=RERANK_CANDIDATES,
            peers=peers,
            peer_rows=[peers.rows[i] for i, _ in pending],
        )
        self.x = pairs.signals.features()
        self.y = np.array(
            [
                (pending[i][0], ids[r]) in self.gold
                for i, r in zip(pairs.items.tolist(), pairs.rows.tolist(), strict=True)
            ],
            dtype=float,
        )

    def f1(self, w: np.ndarray, b: float) -> tuple[float, float, float]:
        scoring.COEFFICIENTS, scoring.INTERCEPT = w, b
        return precision_recall_f1(self.index.match(self.items), self.gold)


def fit(sets: list[Prepared], penalty: float) -> tuple[np.ndarray, float]:
    x = np.vstack([s.x for s in sets])
    y = np.concatenate([s.y for s in sets])
    weight = np.concatenate([np.full(len(s.y), 1.0 / len(s.y)) for s in sets])
    weight *= len(y) / weight.sum()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        eps = 1e-12
        value = -np.mean(weight * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
        value += penalty * np.sum(w**2) / (2 * len(y))
        grad_z = weight * (p - y) / len(y)
        return value, np.concatenate([x.T @ grad_z + penalty * w / len(y), [grad_z.sum()]])

    # Monotone by construction: more similarity or agreement never lowers the score, a
    # clash of model codes never raises it.
    bounds = [(None, 0.0) if f == "code_differs" else (0.0, None) for f in scoring.FEATURES]
    result = minimize(
        loss,
        np.zeros(x.shape[1] + 1),
        jac=True,
        method="L-BFGS-B",
        bounds=[*bounds, (None, None)],
    )
    w, b = result.x[:-1], float(result.x[-1])
    # Move the intercept to where threshold 0.5 gives the best mean F1.
    best = max(
        (float(np.mean([s.f1(w, b + shift)[2] for s in sets])), b + shift)
        for shift in np.arange(-1.5, 1.51, 0.25)
    )
    return w, best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--penalty", type=float, default=8.0, help="L2 penalty")
    parser.add_argument(
        "--synthetic", action="store_true", help="fit on the synthetic set too (else only shown)"
    )
    args = parser.parse_args()
    current = (scoring.COEFFICIENTS.copy(), scoring.INTERCEPT)
    sets = prepared_sets()
    if not args.synthetic:
        sets = sets[:-1]
    for s in sets:
        print(f"{s.name}: {len(s.y)} pairs, {int(s.y.sum())} positive")
    w, b = fit(sets, args.penalty)
    print("\nFEATURES =", scoring.FEATURES)
    print("COEFFICIENTS = np.array([" + ", ".join(f"{v:.2f}" for v in w) + "])")
    print(f"INTERCEPT = {b:.2f}")
    print(f"\n{'set':28} {'current':>8} {'pooled':>8} {'held out':>8}   (F1 at 0.5)")
    for held_out in sets:
        others = [s for s in sets if s is not held_out]
        w_o, b_o = fit(others, args.penalty)
        print(
            f"{held_out.name:28} {held_out.f1(*current)[2]:8.3f} "
            f"{held_out.f1(w, b)[2]:8.3f} {held_out.f1(w_o, b_o)[2]:8.3f}"
        )
    scoring.COEFFICIENTS, scoring.INTERCEPT = current


if __name__ == "__main__":
    main()
