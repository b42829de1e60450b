"""Fit the logistic scoring model of ``matching.scoring`` on the benchmark sets.

Run: ``.venv/bin/python benchmarks/fit_scoring.py``. Gathers the signals of every
shortlisted (item, candidate) pair that the exact stage leaves, labels a pair
positive when it is in the gold file, and fits one L2-regularised logistic
regression on the sets pooled. It prints the coefficients to paste into
``matching/scoring.py`` and a leave-one-set-out check: F1 on each set with a
model fitted on the other sets only, at the default threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matching.scoring as scoring  # noqa: E402
from benchmarks.datasets import ABT_BUY, AMAZON_GOOGLE, DBLP_ACM, BenchmarkSet, load  # noqa: E402
from benchmarks.matching_quality import precision_recall_f1  # noqa: E402
from matching import DEFAULT_THRESHOLD, CatalogIndex, normalise_text  # noqa: E402

FIT_SETS = (ABT_BUY, AMAZON_GOOGLE, DBLP_ACM)
L2_PENALTY = 1.0


def pair_features(spec: BenchmarkSet) -> tuple[np.ndarray, np.ndarray]:
    items, catalog, gold = load(spec)
    index = CatalogIndex.build(catalog)
    ids = [c for c, _ in catalog]
    exact_keys = {normalise_text(t) for _, t in catalog}
    pending = [(i, t) for i, t in items if normalise_text(t) not in exact_keys]
    texts = [t for _, t in pending]
    keys = [normalise_text(t) for t in texts]
    forced = [index._unique_code_row(t) for t in texts]  # noqa: SLF001 - a fitting tool
    pairs = index._scorer.score(texts, keys, forced)  # noqa: SLF001
    labels = np.array(
        [(pending[i][0], ids[r]) in gold for i, r in zip(pairs.items, pairs.rows, strict=True)]
    )
    return pairs.signals.features(), labels.astype(float)


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-12
        value = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
        value += L2_PENALTY * np.sum(w**2) / (2 * len(y))
        grad_z = (p - y) / len(y)
        grad = np.concatenate([x.T @ grad_z + L2_PENALTY * w / len(y), [grad_z.sum()]])
        return value, grad

    theta0 = np.zeros(x.shape[1] + 1)
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B")
    return result.x[:-1], float(result.x[-1])


def evaluate(spec: BenchmarkSet, w: np.ndarray, b: float) -> tuple[float, float, float]:
    scoring.COEFFICIENTS, scoring.INTERCEPT = w, b
    items, catalog, gold = load(spec)
    return precision_recall_f1(CatalogIndex.build(catalog).match(items), gold)


def main() -> None:
    data = {spec.name: pair_features(spec) for spec in FIT_SETS}
    for name, (x, y) in data.items():
        print(f"{name}: {len(y)} pairs, {int(y.sum())} positive")
    x_all = np.vstack([x for x, _ in data.values()])
    y_all = np.concatenate([y for _, y in data.values()])
    w, b = fit(x_all, y_all)
    print("\nFEATURES =", scoring.FEATURES)
    print("COEFFICIENTS = np.array([" + ", ".join(f"{v:.3f}" for v in w) + "])")
    print(f"INTERCEPT = {b:.3f}")
    print(f"\nleave-one-set-out at threshold {DEFAULT_THRESHOLD}:")
    for held_out in FIT_SETS:
        others = [data[s.name] for s in FIT_SETS if s is not held_out]
        w_o, b_o = fit(np.vstack([x for x, _ in others]), np.concatenate([y for _, y in others]))
        p, r, f1 = evaluate(held_out, w_o, b_o)
        print(f"  {held_out.name:16} P {p:.3f} R {r:.3f} F1 {f1:.3f}")
    print("pooled fit, in-sample:")
    for spec in FIT_SETS:
        p, r, f1 = evaluate(spec, w, b)
        print(f"  {spec.name:16} P {p:.3f} R {r:.3f} F1 {f1:.3f}")


if __name__ == "__main__":
    main()
