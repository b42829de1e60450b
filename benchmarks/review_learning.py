"""Review and learning with a simulated reviewer who answers from the gold file (issue 11).

For each visible set (standard fields) and its open-world variant
(``benchmarks/open_world.py``), prints:

- **queue**: how many of the default's wrong decisions the first 50 pairs of the review
  queue correct, beside how many wrong decisions there are, for the queue's order (the
  chance that the decision is wrong, a match's beside the job's other matches of its
  record: ``matching.review.contested_error_chance``) and, to compare, that chance from
  the decision's own scores alone ("alone", ``matching.review.error_chance``), the pairs
  nearest the threshold first ("near"), the chance from the best candidate
  alone ("best"), and a queue re-ordered after every answer by the calibration fitted on
  the answers so far ("adapt");
- **learning**: the half-A / half-B experiment: a project gets the catalog and half A of
  the items, runs the default job, answers the first 50 pairs its queue offers; then half
  B is added and the project's next job runs with the acceptance re-fitted from those
  answers (``matching.calibration``). Its F1 on half B against a default job's F1 on
  half B in a fresh project (and, as a bound no one can claim, the best threshold for
  half B itself).

- with ``--splits N``: the learning experiment again over N other draws of the halves
  (seeds 0..N-1), its gain's mean and range: on a small set one draw's gain is mostly
  that draw (Amazon-Google open world: -0.037 to +0.004 over six draws);
- with ``--shifts``: whether learning recovers a default that is wrong for a project. Every
  score of the half-A / half-B experiment is moved by a fixed shift of its logit (−2..+2:
  a default that under- or over-accepts), the queue is ordered by the shifted chances,
  and half B's F1 is printed for the default threshold, the re-fitted one
  (``matching.calibration``, bounded by ``MAX_EXTRAPOLATION``), the same fit unbounded,
  and the best threshold for half B itself. The jobs are scored once and shifted after
  (one-to-one and the peers do not depend on the threshold).

The library runs the jobs (``CatalogIndex.match_for_review`` with the job's peers, as the
enhanced stage does, and the same pure functions the service calls); ``--service SET``
runs that set's experiment end to end through a real ``chunkmatch serve`` (HTTP uploads,
jobs, ``GET``/``POST /api/jobs/{id}/review``) as well.

The reviewer: the proposed record if the gold file pairs it with the item ("match");
else another of the shown candidates that it pairs ("match" with that one); else
"no-match" (with ``catalogId`` null when the item has no counterpart left in the
catalog, else about the proposed record).

    .venv/bin/python benchmarks/review_learning.py [--decisions 50] [--service DBLP-ACM]
        [--splits 6]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matching.calibration as calibration_module  # noqa: E402
from benchmarks.datasets import ABT_BUY_STANDARD, AMAZON_GOOGLE, DBLP_ACM, load  # noqa: E402
from benchmarks.open_world import MatchSet, open_world  # noqa: E402
from matching import DEFAULT_THRESHOLD, CatalogIndex  # noqa: E402
from matching.calibration import fit_acceptance, fit_calibration  # noqa: E402
from matching.review import REVIEW_MIN_ERROR, ReviewPair, contested_error_chance  # noqa: E402

SETS = (ABT_BUY_STANDARD, AMAZON_GOOGLE, DBLP_ACM)
SPLIT_SEED = 11
DECISIONS = 50

Decision = tuple[str, str | None, str]  # item, record or None, "match" | "no-match"


def gold_of(gold: set[tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for item_id, catalog_id in gold:
        out.setdefault(item_id, set()).add(catalog_id)
    return out


def answer(
    item_id: str, proposed: str, candidates: Sequence[str], right: dict[str, set[str]]
) -> Decision:
    """What a reviewer who knows the gold pairs answers about a pair of the queue."""
    wanted = right.get(item_id, set())
    if proposed in wanted:
        return item_id, proposed, "match"
    for c in candidates:
        if c in wanted:
            return item_id, c, "match"
    return item_id, None if not wanted else proposed, "no-match"


def label(decision: Decision, proposed: str) -> bool | None:
    """Whether the decision says the proposed pair is right (None: it says nothing)."""
    _, catalog_id, kind = decision
    if kind == "match":
        return catalog_id == proposed
    return False if catalog_id is None or catalog_id == proposed else None


def is_right(item_id: str, catalog_id: str | None, right: dict[str, set[str]]) -> bool:
    wanted = right.get(item_id, set())
    return catalog_id in wanted if catalog_id is not None else not wanted


def prf(
    predicted: dict[str, str], gold: set[tuple[str, str]], items: set[str]
) -> tuple[float, float, float]:
    pairs = {(i, c) for i, c in predicted.items() if i in items}
    wanted = {(i, c) for i, c in gold if i in items}
    correct = len(pairs & wanted)
    p = correct / len(pairs) if pairs else 0.0
    r = correct / len(wanted) if wanted else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


@dataclass
class JobResult:
    matches: dict[str, str]  # item -> record
    scores: dict[str, float]  # item -> best candidate's score (all items with one)
    review: list[ReviewPair]
    match_scores: dict[str, float]  # item -> its match's score


def run_job(
    index: CatalogIndex,
    items: list[tuple[str, str]],
    peer_items: list[tuple[str, str]],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> JobResult:
    """A job over ``items`` of a project holding ``peer_items``, as the enhanced stage runs it
    (its matches judged beside the others of their record at its end)."""
    peers = index.peers(peer_items)
    found, review = index.match_for_review(
        items, threshold=threshold, peers=peers, review_from=REVIEW_MIN_ERROR, contest=True
    )
    best = index.match_for_review(items, threshold=0.0, peers=peers)[0]
    return JobResult(
        {r.item_id: r.catalog_id for r in found},
        {r.item_id: r.score for r in best},
        review,
        {r.item_id: r.score for r in found},
    )


def queue_order(job: JobResult) -> Callable[[ReviewPair], float]:
    """The service's queue order: the chance that the decision is wrong, a match's beside
    the job's other matches of the same record (``matching.review.contested_error_chance``)."""
    claims: dict[str, list[str]] = {}
    for item_id, catalog_id in job.matches.items():
        claims.setdefault(catalog_id, []).append(item_id)

    def key(pair: ReviewPair) -> float:
        if not pair.matched:
            return -pair.error_chance
        rivals = [
            job.match_scores[i] for i in claims[pair.proposed.catalog_id] if i != pair.item_id
        ]
        return -contested_error_chance(pair.proposed.score, rivals)

    return key


def labelled_chance(pair: ReviewPair, shown: Callable[[ReviewPair], float]) -> float:
    """What a decision about ``pair`` labels, as the service stores it (``proposed_chance``):
    a match's chance beside the job's other matches of its record, a withdrawn match's the
    chance its rivals left it, an unmatched item's best candidate's score."""
    if pair.matched:
        return 1.0 + shown(pair)
    if pair.withdrawn_chance is not None:
        return pair.withdrawn_chance
    return pair.proposed.score


ORDERS: dict[str, Callable[[ReviewPair], float]] = {
    "error chance": lambda p: -p.error_chance,
    "near threshold": lambda p: abs(p.proposed.score - DEFAULT_THRESHOLD),
    "best only": lambda p: -(1 - p.proposed.score if p.matched else p.proposed.score),
}


def corrected(
    job: JobResult, right: dict[str, set[str]], order: Callable[[ReviewPair], float], n: int
) -> tuple[int, list[Decision], list[ReviewPair]]:
    """How many wrong decisions of ``job`` the first ``n`` pairs of the queue in ``order``
    correct, the reviewer's decisions and the pairs they were about."""
    asked = sorted(job.review, key=lambda p: (order(p), p.item_id))[:n]
    fixed, decisions = 0, []
    for pair in asked:
        was = job.matches.get(pair.item_id)
        d = answer(pair.item_id, pair.proposed.catalog_id, [c for c, _ in pair.candidates], right)
        decisions.append(d)
        now = d[1] if d[2] == "match" else (None if d[1] is None or d[1] == was else was)
        if not is_right(pair.item_id, was, right) and is_right(pair.item_id, now, right):
            fixed += 1
    return fixed, decisions, asked


def adaptive_corrected(job: JobResult, right: dict[str, set[str]], n: int) -> int:
    """:func:`corrected` for a queue re-ordered after every answer: the chance of being
    wrong from the calibration re-fitted on the answers so far (the default as the prior,
    from the first answer on). Not what the service does: measured to compare."""
    remaining = list(job.review)
    scores: list[float] = []
    labels: list[bool] = []
    fixed = 0
    for _ in range(min(n, len(remaining))):
        fit = fit_calibration(scores, labels, min_labels=1)

        def chance(p: ReviewPair, fit=fit) -> float:
            if p.matched:
                return 1.0 - fit.chance(p.proposed.score)
            return min(1.0, sum(fit.chance(s) for _, s in p.candidates))

        pair = max(remaining, key=lambda p: (chance(p), p.item_id))
        remaining.remove(pair)
        was = job.matches.get(pair.item_id)
        d = answer(pair.item_id, pair.proposed.catalog_id, [c for c, _ in pair.candidates], right)
        now = d[1] if d[2] == "match" else (None if d[1] is None or d[1] == was else was)
        fixed += not is_right(pair.item_id, was, right) and is_right(pair.item_id, now, right)
        y = label(d, pair.proposed.catalog_id)
        if y is not None:
            scores.append(pair.proposed.score)
            labels.append(y)
    return fixed


def wrong_decisions(job: JobResult, items: list[tuple[str, str]], right: dict) -> int:
    return sum(not is_right(i, job.matches.get(i), right) for i, _ in items)


def split(items: list[tuple[str, str]], seed: int | None = None) -> tuple[list, list]:
    shuffled = list(items)
    random.Random(SPLIT_SEED if seed is None else seed).shuffle(shuffled)
    half = len(shuffled) // 2
    return shuffled[:half], shuffled[half:]


def learning(
    data: MatchSet, index: CatalogIndex, n: int, seed: int | None = None
) -> dict[str, float]:
    """The half-A / half-B experiment in the library (the halves drawn with ``seed``,
    default :data:`SPLIT_SEED`)."""
    right = gold_of(data.gold)
    half_a, half_b = split(data.items, seed)
    b_ids = {i for i, _ in half_b}
    first = run_job(index, half_a, half_a)
    _, decisions, asked = corrected(first, right, queue_order(first), n)
    shown = queue_order(first)
    labels = [
        (labelled_chance(p, shown), label(d, p.proposed.catalog_id))
        for d, p in zip(decisions, asked, strict=True)
    ]
    labels = [(s, y) for s, y in labels if y is not None]
    calibration = fit_acceptance(
        [s for s, _ in labels], [y for _, y in labels], [(s, 1) for s in first.scores.values()]
    )
    decided = {d[0] for d in decisions}
    # the project's next job: its unmatched, undecided items of half A and all of half B
    next_items = [(i, t) for i, t in half_a if i not in first.matches and i not in decided]
    second = run_job(index, next_items + half_b, half_a + half_b, threshold=calibration.threshold)
    fresh = run_job(index, half_b, half_b)
    learned = prf(second.matches, data.gold, b_ids)
    default = prf(fresh.matches, data.gold, b_ids)
    everything = fresh_all(index, half_b)
    tuned = max(
        prf({i: c for i, c in everything.items() if fresh.scores[i] >= t / 100}, data.gold, b_ids)[
            2
        ]
        for t in range(1, 100)
    )
    return {
        "threshold": calibration.threshold,
        "intercept": calibration.intercept,
        "slope": calibration.slope,
        "labels": len(labels),
        "learned": learned[2],
        "learned_p": learned[0],
        "learned_r": learned[1],
        "default": default[2],
        "default_p": default[0],
        "default_r": default[1],
        "tuned": tuned,
    }


SHIFTS = (-2.0, -1.0, 0.0, 1.0, 2.0)


def shifted(score: float, shift: float) -> float:
    p = min(max(score, 1e-6), 1 - 1e-6)
    return 1.0 / (1.0 + math.exp(-(math.log(p / (1 - p)) + shift)))


def shifted_learning(
    data: MatchSet, index: CatalogIndex, n: int, shifts: Sequence[float] = SHIFTS
) -> list[dict[str, float]]:
    """The half-A / half-B experiment with every score's logit moved by each of ``shifts``."""
    right = gold_of(data.gold)
    half_a, half_b = split(data.items)
    b_ids = {i for i, _ in half_b}
    _, queue = index.match_for_review(
        half_a, threshold=0.0, peers=index.peers(half_a), review_from=1e-9
    )
    best_b = index.match(half_b, threshold=0.0, peers=index.peers(half_b))
    rows = []
    for shift in shifts:

        def chance(pair: ReviewPair, shift: float = shift) -> float:
            s = shifted(pair.proposed.score, shift)
            if s >= DEFAULT_THRESHOLD:
                return 1.0 - s
            return min(1.0, sum(shifted(c, shift) for _, c in pair.candidates))

        asked = sorted(queue, key=lambda p: (-chance(p), p.item_id))[:n]
        scores, labels = [], []
        for pair in asked:
            d = answer(
                pair.item_id, pair.proposed.catalog_id, [c for c, _ in pair.candidates], right
            )
            y = label(d, pair.proposed.catalog_id)
            if y is not None:
                scores.append(shifted(pair.proposed.score, shift))
                labels.append(y)

        def f1(threshold: float, shift: float = shift) -> float:
            kept = {r.item_id: r.catalog_id for r in best_b if shifted(r.score, shift) >= threshold}
            return prf(kept, data.gold, b_ids)[2]

        bounded = fit_calibration(scores, labels).threshold
        histogram = [(shifted(p.proposed.score, shift), 1) for p in queue]
        accepting = fit_acceptance(scores, labels, histogram).threshold
        saved = calibration_module.MAX_EXTRAPOLATION
        calibration_module.MAX_EXTRAPOLATION = math.inf
        try:
            unbounded = fit_calibration(scores, labels).threshold
        finally:
            calibration_module.MAX_EXTRAPOLATION = saved
        rows.append(
            {
                "shift": shift,
                "default": f1(DEFAULT_THRESHOLD),
                "learned": f1(bounded),
                "threshold": bounded,
                "acceptance": f1(accepting),
                "acceptance_threshold": accepting,
                "unbounded": f1(unbounded),
                "unbounded_threshold": unbounded,
                "tuned": max(f1(t / 100) for t in range(1, 100)),
            }
        )
    return rows


def fresh_all(index: CatalogIndex, items: list[tuple[str, str]]) -> dict[str, str]:
    peers = index.peers(items)
    return {r.item_id: r.catalog_id for r in index.match(items, threshold=0.0, peers=peers)}


def through_service(data: MatchSet, n: int) -> dict[str, float]:
    """The queue figure and the half-A / half-B experiment through a real service."""
    import httpx

    from benchmarks.service_end_to_end import check, server

    right = gold_of(data.gold)
    half_a, half_b = split(data.items)
    b_ids = {i for i, _ in half_b}

    def records(rows: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"id": i, "name": t} for i, t in rows]

    with (
        server() as (url, _pid, token),
        httpx.Client(base_url=url, timeout=600, headers={"Authorization": f"Bearer {token}"}) as c,
    ):

        def project(items: list[tuple[str, str]]) -> str:
            pid = check(c.post("/api/projects", json={"name": data.name}))["project"]["id"]
            check(c.post(f"/api/projects/{pid}/catalog", json={"records": records(data.catalog)}))
            check(c.post(f"/api/projects/{pid}/items", json={"records": records(items)}))
            return pid

        def job(pid: str) -> dict:
            created = check(
                c.post("/api/jobs/create", json={"projectId": pid, "jobType": "enhanced"})
            )
            current = created["job"]
            while current["status"] in ("pending", "processing"):
                current = check(c.post(f"/api/jobs/{current['id']}/process"))["job"]
            return current

        def matches(job_id: str) -> dict[str, str]:
            out, cursor = {}, None
            while True:
                params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
                page = check(c.get(f"/api/jobs/{job_id}/matches", params=params))
                out |= {m["itemId"]: m["catalogId"] for m in page["matches"]}
                cursor = page["nextCursor"]
                if cursor is None:
                    return out

        def review(job_id: str) -> tuple[int, float, dict]:
            """Answer the first ``n`` pairs, one request each (the queue asked again after
            each, as the page does); how many wrong decisions they corrected."""
            before = matches(job_id)
            fixed, slowest, calibration = 0, 0.0, {}
            for _ in range(n):
                started = time.perf_counter()
                pairs = check(c.get(f"/api/jobs/{job_id}/review", params={"limit": 1}))["pairs"]
                slowest = max(slowest, time.perf_counter() - started)
                if not pairs:
                    break
                p = pairs[0]
                item, record, kind = answer(
                    p["itemId"], p["catalogId"], [x["catalogId"] for x in p["candidates"]], right
                )
                decision = {"itemId": item, "catalogId": record, "decision": kind}
                answered = check(
                    c.post(f"/api/jobs/{job_id}/review", json={"decisions": [decision]})
                )
                calibration = answered["calibration"]
                was = before.get(item)
                now = record if kind == "match" else (None if record in (None, was) else was)
                fixed += not is_right(item, was, right) and is_right(item, now, right)
            return fixed, slowest, calibration

        whole = job(project(data.items))
        fixed, slowest, _ = review(whole["id"])
        pid = project(half_a)
        first = job(pid)
        _, _, calibration = review(first["id"])
        check(c.post(f"/api/projects/{pid}/items", json={"records": records(half_b)}))
        second = job(pid)
        fresh = job(project(half_b))
        learned = prf(matches(second["id"]), data.gold, b_ids)
        default = prf(matches(fresh["id"]), data.gold, b_ids)
    return {
        "fixed": fixed,
        "slowest_queue_ms": 1000 * slowest,
        "threshold": second["config"]["threshold"],
        "used": second["calibration"],
        "calibration": calibration,
        "learned": learned[2],
        "default": default[2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=DECISIONS)
    parser.add_argument("--sets", nargs="*", default=[s.name for s in SETS])
    parser.add_argument(
        "--service",
        nargs="*",
        default=[],
        help="run these sets' variants (e.g. 'DBLP-ACM open world') through the service too",
    )
    parser.add_argument(
        "--splits",
        type=int,
        default=1,
        help="also repeat the learning experiment over this many other draws of the halves "
        "(seeds 0..N-1) and print the gain's mean and range: one draw's gain is mostly the draw",
    )
    parser.add_argument(
        "--shifts",
        action="store_true",
        help="also learn on defaults made wrong on purpose (every logit shifted by -2..+2)",
    )
    args = parser.parse_args()
    n = args.decisions
    print(f"first {n} decisions of the queue; learning on half A, F1 on half B")
    print(
        f"{'set':38} {'wrong':>6} {'fixed':>5} {'alone':>5} {'near':>5} {'best':>5} {'adapt':>5} | "
        f"{'labels':>6} {'thr':>6} {'a':>6} {'b':>5} {'F1 B':>6} {'dflt':>6} {'gain':>6} {'tuned':>6} {'s':>5}"
    )
    for spec in SETS:
        if spec.name not in args.sets:
            continue
        base = MatchSet(spec.name, *load(spec))
        for data in (base, open_world(base)):
            started = time.perf_counter()
            index = CatalogIndex.build(data.catalog)
            right = gold_of(data.gold)
            job = run_job(index, data.items, data.items)
            wrong = wrong_decisions(job, data.items, right)
            fixed = {name: corrected(job, right, order, n)[0] for name, order in ORDERS.items()}
            fixed["queue"] = corrected(job, right, queue_order(job), n)[0]
            fixed["adaptive"] = adaptive_corrected(job, right, n)
            result = learning(data, index, n)
            print(
                f"{data.name:38} {wrong:6d} {fixed['queue']:5d} {fixed['error chance']:5d} "
                f"{fixed['near threshold']:5d} "
                f"{fixed['best only']:5d} {fixed['adaptive']:5d} | {result['labels']:6d} "
                f"{result['threshold']:6.3f} "
                f"{result['intercept']:6.2f} {result['slope']:5.2f} {result['learned']:6.3f} "
                f"{result['default']:6.3f} {result['learned'] - result['default']:+6.3f} "
                f"{result['tuned']:6.3f} {time.perf_counter() - started:5.0f}",
                flush=True,
            )
            if args.splits > 1:
                gains = []
                for seed in range(args.splits):
                    drawn = learning(data, index, n, seed)
                    gains.append(drawn["learned"] - drawn["default"])
                print(
                    f"{'  gain over ' + str(args.splits) + ' other draws of the halves':38} "
                    f"mean {statistics.mean(gains):+.4f}, min {min(gains):+.3f}, "
                    f"max {max(gains):+.3f}: " + " ".join(f"{g:+.3f}" for g in gains),
                    flush=True,
                )
            if args.shifts:
                for row in shifted_learning(data, index, n):
                    print(
                        f"{'  logits shifted by ' + format(row['shift'], '+.0f'):38} "
                        f"F1 B default {row['default']:.3f} | learned {row['learned']:.3f} "
                        f"(thr {row['threshold']:.3f}) | with the F1 aim "
                        f"{row['acceptance']:.3f} (thr {row['acceptance_threshold']:.3f}) | "
                        f"unbounded {row['unbounded']:.3f} "
                        f"(thr {row['unbounded_threshold']:.3f}) | tuned {row['tuned']:.3f}",
                        flush=True,
                    )
            if data.name in args.service:
                started = time.perf_counter()
                served = through_service(data, n)
                print(
                    f"{'  through the service':38} {'':6} {served['fixed']:5d} {'':5} {'':5} {'':5} "
                    f"{'':5} | "
                    f"{served['calibration'].get('labels', 0):6d} {served['threshold']:6.3f} "
                    f"{served['calibration'].get('intercept', 0):6.2f} "
                    f"{served['calibration'].get('slope', 1):5.2f} {served['learned']:6.3f} "
                    f"{served['default']:6.3f} {served['learned'] - served['default']:+6.3f} "
                    f"{'':6} {time.perf_counter() - started:5.0f}  (slowest queue answer "
                    f"{served['slowest_queue_ms']:.0f} ms; the job used "
                    f"{'the project calibration' if served['used'] else 'the default'})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
