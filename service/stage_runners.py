"""What each stage does with one chunk of items, given the catalog and the providers.

``enhanced`` matches with the pure matcher (exact keys, codes, fuzzy); ``ai`` asks the chat
model to choose among the index's candidates; ``web-search`` searches the web for the item,
re-queries the index with what it finds, and lets the model (or, without one, the index
score) decide. Slow stages run under a time budget: items not decided in time go back to
the queue, and a provider that asks us to wait holds the job instead of failing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from matching.llm import LLMItem, candidates_for_items
from matching.peers import PeerSet
from matching.results import MatchResult
from matching.review import (
    REVIEW_CANDIDATES,
    REVIEW_MIN_ERROR,
    ReviewPair,
    error_chance,
    most_uncertain,
)
from matching.web_decision import choose_without_model
from matching.websearch import SearchError, WebCandidates, search_candidates
from service import metrics
from service.catalog_index import CatalogEntry
from service.chunk_rows import (
    MatchRow,
    ReviewEntry,
    ReviewRow,
    explanation_json,
    kept_review,
    match_rows,
    review_row,
)
from service.match_processes import MIN_SPLIT_ITEMS, Prefetched, RemoteMatch
from service.models import StageOutcome, StageUsage
from service.providers import Providers

logger = logging.getLogger("chunkmatch.stages")

CANDIDATES_PER_ITEM = 10
# prior throughput of the slow stages, items/s, for an ETA before they have run
PRIOR_ITEMS_PER_SECOND = {"ai": 8.0, "web-search": 1.5}
# the enhanced stage's prior cost per item, which grows with the catalog it retrieves from:
# measured through the service on 2 shared cores (chunks of 2,000, synthetic titles, back to
# back), about 5,900 items/s against 20k records and 4,400 against 100k
ENHANCED_PRIOR_SECONDS_PER_ITEM = 155e-6
ENHANCED_PRIOR_SECONDS_PER_RECORD = 0.7e-9  # per item and catalog record
# what a helper process adds to the enhanced stage's rate (one helper on 2 cores, 100k x
# 100k, back to back: a chunk of 2,000 in 356 ms instead of 465 ms)
ENHANCED_PRIOR_HELPER_GAIN = 0.3


def prior_items_per_second(stage: str, catalog_records: int = 0, helpers: int = 0) -> float:
    """What ``stage`` is expected to run at, items/s, before it has run anywhere, with
    ``helpers`` processes matching a share of each enhanced chunk.

    >>> round(prior_items_per_second("enhanced", 100_000))
    4444
    >>> round(prior_items_per_second("enhanced", 100_000, helpers=1))
    5778
    """
    if stage == "enhanced":
        per_item = ENHANCED_PRIOR_SECONDS_PER_ITEM
        rate = 1.0 / (per_item + ENHANCED_PRIOR_SECONDS_PER_RECORD * max(0, catalog_records))
        return rate * (1.0 + ENHANCED_PRIOR_HELPER_GAIN * helpers)
    return PRIOR_ITEMS_PER_SECOND[stage]


@dataclass(frozen=True)
class StageContext:
    catalog: CatalogEntry
    peers: PeerSet | None  # the job's items, rivals for the same records (enhanced only)
    threshold: float
    providers: Providers
    deadline: float  # time.monotonic() by which the chunk must be decided
    # one-to-one jobs: the scores with which the job already holds some catalog records
    held_scores: Callable[[list[str]], Awaitable[dict[str, float]]] | None = None
    # helper processes holding the job's index and peers, each matching a share of a chunk
    helpers: Sequence[RemoteMatch] = ()
    # the chunk's last items, matched by a helper before the chunk was claimed
    prefetched: Prefetched | None = None


ONE_TO_ONE_CANDIDATES = 5
"""Candidates per item a one-to-one job may fall back on when a better item holds its best."""


async def run_enhanced(ctx: StageContext, items: Sequence[tuple[str, str]]) -> StageOutcome:
    if ctx.held_scores is not None:
        return await _run_one_to_one(ctx, items)
    index, threshold, peers = ctx.catalog.index, ctx.threshold, ctx.peers

    async def here(part: Sequence[tuple[str, str]]) -> tuple[list[MatchRow], list[ReviewEntry]]:
        # the rows and their explanations' JSON are made off the event loop too
        return await asyncio.to_thread(match_rows, index, part, threshold, peers, len(items))

    async def helped(
        part: Sequence[tuple[str, str]],
        outcome: str,
        work: Awaitable[tuple[list[MatchRow], list[ReviewEntry]]],
    ) -> tuple[list[MatchRow], list[ReviewEntry]]:
        """A helper's ``work`` on ``part`` (``outcome``: matched now, or prefetched ahead),
        or the same matched here if the helper fails."""
        try:
            done = await work
        except Exception:
            logger.warning("a matching helper failed; its share is matched here", exc_info=True)
            metrics.helper_items(len(part), "failed")
            return await here(part)
        metrics.helper_items(len(part), outcome)
        return done

    if ctx.prefetched is not None:
        share = ctx.prefetched.items
        own = items[: len(items) - len(share)]
        done = await asyncio.gather(here(own), helped(share, "prefetched", ctx.prefetched.result()))
    else:
        helpers = ctx.helpers if len(items) >= MIN_SPLIT_ITEMS else ()
        parts = _shares(items, 1 + len(helpers))
        done = await asyncio.gather(
            here(parts[0]),
            *(
                helped(part, "matched", remote(part, threshold, len(items)))
                for remote, part in zip(helpers, parts[1:], strict=True)
            ),
        )
    matches = [row for rows, _ in done for row in rows]
    review = kept_review([entry for _, entries in done for entry in entries], len(items))
    return StageOutcome(matches, review=review)


def _shares(items: Sequence[tuple[str, str]], n: int) -> list[Sequence[tuple[str, str]]]:
    """``items`` cut into ``n`` consecutive shares of nearly equal size, in order."""
    bounds = [round(k * len(items) / n) for k in range(n + 1)]
    return [items[bounds[k] : bounds[k + 1]] for k in range(n)]


async def _run_one_to_one(ctx: StageContext, items: Sequence[tuple[str, str]]) -> StageOutcome:
    """Each catalog record at most once per job: every item takes its best candidate that
    clears the threshold and that no better-scoring item holds (of this chunk, or of the
    job's committed matches), so an item that loses its first choice to a better rival
    falls back on its next one. The commit settles races with concurrent chunks."""
    assert ctx.held_scores is not None
    found = await asyncio.to_thread(
        ctx.catalog.index.candidates_many, items, k=ONE_TO_ONE_CANDIDATES, peers=ctx.peers
    )
    wanted = [c for cs in found for c in cs if c.score >= ctx.threshold]
    held = await ctx.held_scores(sorted({c.catalog_id for c in wanted}))
    taken: dict[str, float] = dict(held)
    chosen: dict[str, MatchResult] = {}
    # best pairs first; an item's list is already in its own preference order
    for candidate in sorted(wanted, key=lambda c: (-c.score, c.item_id, c.catalog_id)):
        if candidate.item_id in chosen:
            continue
        if taken.get(candidate.catalog_id, -1.0) >= candidate.score:
            continue
        taken[candidate.catalog_id] = candidate.score
        chosen[candidate.item_id] = candidate
    rows = [
        (r.item_id, r.catalog_id, float(r.score), r.method, r.reason, explanation_json(r))
        for r in chosen.values()
    ]
    return StageOutcome(rows, review=_one_to_one_review(found, chosen))


def _one_to_one_review(
    found: Sequence[Sequence[MatchResult]], chosen: dict[str, MatchResult]
) -> list[ReviewRow]:
    """The reviewable decisions of a one-to-one chunk: its matches, and its unmatched items
    whose best candidate is worth a look (see :func:`matching.review.error_chance`)."""
    pairs = []
    for candidates in found:
        if not candidates:
            continue
        item_id = candidates[0].item_id
        listed = tuple((c.catalog_id, float(c.score)) for c in candidates[:REVIEW_CANDIDATES])
        match = chosen.get(item_id)
        proposed = match or candidates[0]
        if match is None and proposed.score < REVIEW_MIN_ERROR:
            continue
        chance = error_chance(
            proposed.score, matched=match is not None, candidate_scores=[s for _, s in listed]
        )
        if chance >= REVIEW_MIN_ERROR:
            pairs.append(ReviewPair(proposed, match is not None, listed, chance))
    return [review_row(pair) for pair in most_uncertain(pairs, len(found))]


async def _decide(
    ctx: StageContext, questions: list[LLMItem], method: str
) -> tuple[list[MatchRow], list[tuple[str, str]], list[str], StageUsage, float | None, str | None]:
    decider = ctx.providers.decider
    assert decider is not None
    result = await decider.decide(questions, deadline=ctx.deadline)
    min_confidence = ctx.providers.settings.llm_min_confidence
    matches = [
        (d.item_id, d.catalog_id, float(d.confidence), method, d.reason, None)
        for d in result.decisions
        if d.catalog_id is not None and d.confidence >= min_confidence
    ]
    failed = [(f.item_id, f.error) for f in result.failures]
    undecided = list(result.undecided)
    wait = result.retry_after
    reason = None
    if wait:
        reason = f"the model provider asked us to wait {wait:.0f}s (rate limit or outage)"
    answered = result.usage.completion_tokens > 0  # some request got a real completion
    if result.failures and not answered and all(f.retriable for f in result.failures):
        # no request of the chunk got an answer: the provider is down, not these items —
        # keep them queued and hold the job, instead of failing every item of an outage
        undecided += [f.item_id for f in result.failures]
        failed = []
        wait = max(wait or 0.0, ctx.providers.settings.provider_outage_wait_seconds)
        reason = f"the model provider is unavailable ({result.failures[0].error}); retrying"
    usage = StageUsage(
        llm_requests=result.usage.requests,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        cache_hits=result.usage.cache_hits,
        cost_usd=ctx.providers.cost_usd(result.usage.prompt_tokens, result.usage.completion_tokens),
    )
    # counted when the requests were made, whether or not the chunk commits: they were paid
    metrics.llm_used(
        requests=usage.llm_requests,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cache_hits=usage.cache_hits,
        cost_usd=usage.cost_usd,
    )
    return matches, failed, undecided, usage, wait, reason


async def run_ai(ctx: StageContext, items: Sequence[tuple[str, str]]) -> StageOutcome:
    catalog = ctx.catalog

    def questions() -> list[LLMItem]:
        found = candidates_for_items(
            catalog.index, [text for _, text in items], catalog.texts, k=CANDIDATES_PER_ITEM
        )
        return [(i, text, c) for (i, text), c in zip(items, found, strict=True)]

    asked = await asyncio.to_thread(questions)
    matches, failed, undecided, usage, wait, reason = await _decide(ctx, asked, "llm")
    return StageOutcome(matches, failed, undecided, usage, wait, reason)


async def run_web(ctx: StageContext, items: Sequence[tuple[str, str]]) -> StageOutcome:
    provider = ctx.providers.search
    assert provider is not None
    limit = asyncio.Semaphore(ctx.providers.settings.search_concurrency)
    found: dict[str, WebCandidates] = {}
    failed: list[tuple[str, str]] = []
    requeued: list[str] = []
    waits: list[float] = []

    async def search(item_id: str, text: str) -> None:
        async with limit:
            if time.monotonic() >= ctx.deadline:
                requeued.append(item_id)
                return
            metrics.search_requests(1)  # sent, whatever its answer (a retried one counts too)
            try:
                found[item_id] = await search_candidates(
                    ctx.catalog.index,
                    text,
                    provider,
                    catalog_texts=ctx.catalog.texts,
                    k=CANDIDATES_PER_ITEM,
                )
            except SearchError as exc:
                if exc.retriable:
                    requeued.append(item_id)
                    if exc.retry_after:
                        waits.append(exc.retry_after)
                else:
                    failed.append((item_id, str(exc)))

    await asyncio.gather(*(search(i, t) for i, t in items))
    usage = StageUsage(search_requests=len(found) + len(failed))
    texts = dict(items)
    matches: list[MatchRow] = []
    wait = max(waits) if waits else None
    reason = f"the search provider asked us to wait {wait:.0f}s" if wait else None
    if ctx.providers.decider is not None:
        asked = [(i, texts[i], list(c.candidates)) for i, c in found.items()]
        llm_matches, llm_failed, undecided, llm_usage, llm_wait, llm_reason = await _decide(
            ctx, asked, "web+llm"
        )
        matches, failed, requeued = llm_matches, failed + llm_failed, requeued + undecided
        usage = StageUsage(
            llm_requests=llm_usage.llm_requests,
            prompt_tokens=llm_usage.prompt_tokens,
            completion_tokens=llm_usage.completion_tokens,
            cache_hits=llm_usage.cache_hits,
            search_requests=usage.search_requests,
            cost_usd=llm_usage.cost_usd,
        )
        if llm_wait and (wait is None or llm_wait > wait):
            wait, reason = llm_wait, llm_reason
    else:
        # without a model, only a record that results agreeing with the item support
        # is taken; anything less leaves the item unmatched rather than guessed
        for item_id, web in found.items():
            best = choose_without_model(texts[item_id], web, threshold=ctx.threshold)
            if best is not None:
                matches.append(
                    (
                        item_id,
                        best.catalog_id,
                        float(best.score),
                        "web",
                        "found through web search, supported by results that agree with the"
                        f" item; index similarity {best.score:.2f}",
                        None,
                    )
                )
    return StageOutcome(matches, failed, requeued, usage, wait, reason)


RUNNERS = {"enhanced": run_enhanced, "ai": run_ai, "web-search": run_web}
