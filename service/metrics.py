"""Prometheus metrics of this process, in one registry of its own.

Counters count what *this process* did (Prometheus sums them across processes); the jobs
gauge is read from PostgreSQL at scrape time, so every process reports the same numbers.
Labels are bounded: stage names, outcomes, methods, statuses and route templates, never a
job's, project's or item's id. Incrementing is all the chunk path pays (a few µs per chunk).

The functions below are the interface the rest of the service calls, e.g.::

    metrics.chunk_committed("enhanced", items=2000, methods=["exact", "fuzzy"], seconds=0.4)
    metrics.webhook_delivery("delivered")
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from service.models import JOB_STATUSES
from service.stages import STAGE_NAMES

__all__ = [
    "CONTENT_TYPE",
    "REGISTRY",
    "UNMATCHED_ROUTE",
    "chunk_committed",
    "chunk_ended",
    "exposition",
    "helper_items",
    "http_request",
    "llm_used",
    "search_requests",
    "webhook_delivery",
]

# the classic text format, which every Prometheus version reads (our names need no escaping)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
UNMATCHED_ROUTE = "unmatched"  # the route label of a path no route serves (never the path)

# chunk times range from milliseconds (small enhanced chunks) to the slow stages' budget
CHUNK_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0)
HTTP_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CHUNK_OUTCOMES = ("committed", "failed", "lost", "cancelled", "released")

disable_created_metrics()  # no *_created series: Prometheus needs none of them
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

CHUNKS = Counter(
    "chunkmatch_chunks_total",
    "Chunks this process ran, by stage and outcome (committed; failed: an error; lost: its "
    "lease was gone at commit; cancelled: the job was cancelled meanwhile; released: given "
    "back, the database down or the process stopping)",
    ["stage", "outcome"],
    registry=REGISTRY,
)
CHUNK_SECONDS = Histogram(
    "chunkmatch_chunk_duration_seconds",
    "Wall time of a chunk in this process, claim to end of commit (every outcome)",
    ["stage"],
    buckets=CHUNK_SECONDS_BUCKETS,
    registry=REGISTRY,
)
ITEMS = Counter(
    "chunkmatch_items_processed_total",
    "Items of the chunks this process committed (job_chunks.items)",
    ["stage"],
    registry=REGISTRY,
)
MATCHES = Counter(
    "chunkmatch_matches_total",
    "Matches of the chunks this process committed (job_chunks.matches), by method",
    ["stage", "method"],
    registry=REGISTRY,
)
LLM_REQUESTS = Counter(
    "chunkmatch_llm_requests_total",
    "Requests this process sent to the chat model (answers from the cache not included)",
    registry=REGISTRY,
)
LLM_CACHE_HITS = Counter(
    "chunkmatch_llm_cache_hits_total",
    "Questions answered from the PostgreSQL answer cache instead of the model",
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "chunkmatch_llm_tokens_total",
    "Tokens of this process's chat model requests, by kind (prompt, completion)",
    ["kind"],
    registry=REGISTRY,
)
LLM_COST = Counter(
    "chunkmatch_llm_cost_usd_total",
    "Estimated cost of this process's chat model requests, USD (CHUNKMATCH_LLM_PRICE_IN/OUT)",
    registry=REGISTRY,
)
SEARCHES = Counter(
    "chunkmatch_search_requests_total",
    "Searches this process sent to the search provider",
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "chunkmatch_webhook_deliveries_total",
    "Webhook delivery attempts this process made, by outcome",
    ["outcome"],
    registry=REGISTRY,
)
SHARED_ITEMS = Counter(
    "chunkmatch_helper_items_total",
    "Items of this process's enhanced chunks matched by its helper processes "
    "(CHUNKMATCH_MATCH_PROCESSES), by outcome (matched; prefetched: matched ahead; failed: "
    "the server matched them; drafted: items whose peers a helper drafted while the server "
    "built their catalog's index)",
    ["outcome"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "chunkmatch_http_request_duration_seconds",
    "Time to the end of each HTTP answer of this process (an event stream: its whole life), "
    "by route template, method and status",
    ["route", "method", "status"],
    buckets=HTTP_SECONDS_BUCKETS,
    registry=REGISTRY,
)


class JobsByStatus:
    """``chunkmatch_jobs{status}``: the jobs in PostgreSQL by status, the same from every
    process. Collected from the counts the scrape has just read (:func:`exposition`)."""

    def __init__(self) -> None:
        self.counts: Mapping[str, int] | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if self.counts is None:  # not read by this scrape (e.g. the database is down)
            return []
        gauge = GaugeMetricFamily(
            "chunkmatch_jobs", "Jobs in the database by status (all processes)", labels=["status"]
        )
        for status in JOB_STATUSES:
            gauge.add_metric([status], float(self.counts.get(status, 0)))
        return [gauge]

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


# every stage's series exist from the start (at 0), so rate() sees a process's first chunk
for _stage in STAGE_NAMES:
    ITEMS.labels(_stage)
    for _outcome in CHUNK_OUTCOMES:
        CHUNKS.labels(_stage, _outcome)

_JOBS = JobsByStatus()
REGISTRY.register(_JOBS)


def chunk_committed(stage: str, *, items: int, methods: Iterable[str], seconds: float) -> None:
    """A chunk's commit went through: its items and its matches (one method per match)."""
    CHUNKS.labels(stage, "committed").inc()
    CHUNK_SECONDS.labels(stage).observe(seconds)
    ITEMS.labels(stage).inc(items)
    for method, n in Tally(methods).items():
        MATCHES.labels(stage, method).inc(n)


def chunk_ended(stage: str, outcome: str, *, seconds: float) -> None:
    """A chunk ended without a commit (``failed``, ``lost``, ``cancelled``, ``released``)."""
    CHUNKS.labels(stage, outcome).inc()
    CHUNK_SECONDS.labels(stage).observe(seconds)


def llm_used(
    *, requests: int, prompt_tokens: int, completion_tokens: int, cache_hits: int, cost_usd: float
) -> None:
    if requests:
        LLM_REQUESTS.inc(requests)
    if cache_hits:
        LLM_CACHE_HITS.inc(cache_hits)
    if prompt_tokens:
        LLM_TOKENS.labels("prompt").inc(prompt_tokens)
    if completion_tokens:
        LLM_TOKENS.labels("completion").inc(completion_tokens)
    if cost_usd > 0:
        LLM_COST.inc(cost_usd)


def search_requests(n: int) -> None:
    if n:
        SEARCHES.inc(n)


def helper_items(n: int, outcome: str) -> None:
    SHARED_ITEMS.labels(outcome).inc(n)


def webhook_delivery(outcome: str) -> None:
    """One delivery attempt ended (``service/webhooks.py``): ``delivered`` (2xx),
    ``retrying`` (failed, another attempt is scheduled) or ``failed`` (given up)."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_SECONDS.labels(route, method, str(status)).observe(seconds)


def exposition(job_counts: Mapping[str, int] | None) -> bytes:
    """The registry in Prometheus text format, ``chunkmatch_jobs`` from ``job_counts`` (left
    out when None). Synchronous from setting the counts to the text: scrapes cannot mix."""
    _JOBS.counts = job_counts
    try:
        return generate_latest(REGISTRY)
    finally:
        _JOBS.counts = None
