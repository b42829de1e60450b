"""The web-search stage: search the web for an item, then re-query the catalog with what it says.

A search provider is anything with ``async search(query, *, limit)`` returning
:class:`SearchResult` (:class:`SearchProvider`); :class:`SearxngSearch` speaks
SearxNG's JSON API over an injected ``httpx.AsyncClient``. :func:`find_candidates`
turns result titles and snippets into catalog queries (canonical product names,
model codes) and merges the candidates; where an LLM is configured, pass them to
:class:`~matching.llm.LLMDecider` to decide; without one,
:func:`matching.web_decision.choose_without_model` weighs what :func:`search_candidates`
found.

Errors are :class:`SearchError`, with the HTTP status and ``Retry-After`` when the
provider sent them; their messages never quote the query.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from matching.backoff import parse_retry_after
from matching.codes import extract_codes
from matching.exceptions import InvalidArgumentError, MatchingError
from matching.index import DEFAULT_CANDIDATES, CatalogIndex
from matching.llm import candidates_for_items
from matching.llm_prompt import Candidate
from matching.normalise import normalise_text

DEFAULT_SEARCH_RESULTS = 5
"""Results asked of the provider per item."""

DEFAULT_SEARCH_TIMEOUT_SECONDS = 10.0

MAX_QUERY_CHARS = 200
"""Longer item texts are cut before being sent as a search query."""

MAX_CODES_PER_RESULT = 3
"""Model codes taken from one result's title and snippet (snippets list related products too)."""

# Title segments that name the shop or the page, not the product.
_TITLE_SEPARATORS = re.compile(r"\s+[|\-–—:·]\s+|:\s+|\s+\|")
_GENERIC_SEGMENTS = frozenset(
    {"amazon com", "ebay", "electronics", "reviews", "review", "specs", "shop", "buy online"}
)


class SearchError(MatchingError):
    """The web search failed."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def retriable(self) -> bool:
        """Whether trying again later may succeed (rate limits, server faults, timeouts)."""
        return self.status is None or self.status in (408, 429) or self.status >= 500


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One web result: page ``title``, ``url`` and the ``content`` snippet (may be empty)."""

    title: str
    url: str
    content: str


class SearchProvider(Protocol):
    """A web search API."""

    async def search(
        self, query: str, *, limit: int = DEFAULT_SEARCH_RESULTS
    ) -> list[SearchResult]: ...


class SearxngSearch(SearchProvider):
    """SearxNG's JSON API: ``GET {base_url}/search?q=…&format=json``.

    The instance must have the ``json`` format enabled (``search.formats`` in its
    settings), else it answers 403. ``params`` are extra query parameters, such as
    ``{"language": "en", "categories": "shopping"}``.

    >>> import httpx
    >>> provider = SearxngSearch(httpx.AsyncClient(), "http://127.0.0.1:8888")
    >>> # results = await provider.search("sony dsc-w120", limit=5)
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        timeout: float = DEFAULT_SEARCH_TIMEOUT_SECONDS,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/search"
        self._timeout = timeout
        self._params = dict(params or {})

    async def search(
        self, query: str, *, limit: int = DEFAULT_SEARCH_RESULTS
    ) -> list[SearchResult]:
        """Up to ``limit`` results for ``query``; raises :class:`SearchError` on any fault."""
        if limit < 1:
            raise InvalidArgumentError(f"limit must be at least 1, got {limit!r}")
        params = {**self._params, "q": " ".join(query.split())[:MAX_QUERY_CHARS], "format": "json"}
        try:
            response = await self._client.get(self._url, params=params, timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise SearchError("search timed out") from exc
        except httpx.TransportError as exc:
            # Also a body cut short (RemoteProtocolError is a TransportError).
            raise SearchError(f"search connection failed ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise SearchError(
                f"search failed (HTTP {response.status_code})",
                status=response.status_code,
                retry_after=parse_retry_after(response.headers),
            )
        try:
            data = json.loads(response.content)
        except (ValueError, RecursionError) as exc:
            raise SearchError("search response is not JSON", status=200) from exc
        return _read_results(data)[:limit]


def _read_results(data: Any) -> list[SearchResult]:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise SearchError("search response does not have a results list", status=200)
    out = []
    for entry in data["results"]:
        if not isinstance(entry, dict):
            continue
        title, url, content = entry.get("title"), entry.get("url"), entry.get("content")
        if not isinstance(title, str) or not isinstance(url, str):
            continue  # one odd result (an infobox, an answer) should not spoil the rest
        out.append(SearchResult(title, url, content if isinstance(content, str) else ""))
    return out


def product_name(result: SearchResult) -> str:
    """The product name in a result title, without the shop or site parts.

    >>> product_name(SearchResult("Sony DSC-W120 Camera - Black | Best Buy",
    ...                           "https://www.bestbuy.com/site/123", ""))
    'Sony DSC-W120 Camera Black'
    >>> product_name(SearchResult("Amazon.com: Linksys EZXS88W : Electronics",
    ...                           "https://www.amazon.com/dp/B0000", ""))
    'Linksys EZXS88W'
    """
    host_words = {
        label for label in (urlsplit(result.url).hostname or "").split(".") if len(label) > 3
    }
    kept = []
    for segment in _TITLE_SEPARATORS.split(result.title):
        key = normalise_text(segment)
        if not key or key in _GENERIC_SEGMENTS or key.replace(" ", "") in host_words:
            continue
        kept.append(segment.strip())
    return " ".join(kept)


def search_queries(item_text: str, results: list[SearchResult]) -> list[str]:
    """Catalog queries for an item: its own text, each result's product name, and the
    model codes the results mention that the item's text lacks; duplicates removed.

    >>> search_queries("linksys 8 port switch",
    ...                [SearchResult("Linksys EZXS88W 8-Port Switch", "https://x.org/p", "")])
    ['linksys 8 port switch', 'Linksys EZXS88W 8-Port Switch', 'linksys 8 port switch ezxs88w']
    """
    item_codes = extract_codes(item_text)
    queries = [item_text]
    for result in results:
        queries += _result_queries(item_text, item_codes, result)
    seen: set[str] = set()
    out = []
    for query in queries:
        key = normalise_text(query)
        if key and key not in seen:
            seen.add(key)
            out.append(query)
    return out


@dataclass(frozen=True, slots=True)
class WebCandidates:
    """What a web search led to for one item.

    ``results`` are the provider's results in rank order; ``by_result[j]`` maps the
    catalog records that result ``j``'s queries found to their best index score;
    ``own`` does the same for the item's own text; ``candidates`` are the merged
    ``k`` best, as :func:`find_candidates` returns them.
    """

    results: tuple[SearchResult, ...]
    by_result: tuple[Mapping[str, float], ...]
    own: Mapping[str, float]
    candidates: tuple[Candidate, ...]


async def search_candidates(
    index: CatalogIndex,
    item_text: str,
    provider: SearchProvider,
    *,
    catalog_texts: Mapping[str, str],
    k: int = DEFAULT_CANDIDATES,
    results: int = DEFAULT_SEARCH_RESULTS,
) -> WebCandidates:
    """Search the web for ``item_text`` and re-query the catalog with what each result says.

    Each result's queries (its product name, the item's text with the result's new
    codes) and the item's own text are run through ``index.candidates``, and kept
    apart per result for :func:`choose_without_model`. The merged candidates keep a
    record's best score; ties go to the record found by more queries. ``catalog_texts``
    maps catalog ids to the texts the LLM will see. :class:`SearchError` from the
    provider propagates (check ``retriable``). The queries go to the index in one
    batched call in a worker thread.
    """
    if k < 1:
        raise InvalidArgumentError(f"k must be at least 1, got {k!r}")
    found = await provider.search(item_text, limit=results)
    own_codes_ = extract_codes(item_text)
    per_result = [_result_queries(item_text, own_codes_, r) for r in found]
    distinct: dict[str, str] = {}  # normalised query -> the query, in first-seen order
    for query in [item_text, *(q for queries in per_result for q in queries)]:
        key = normalise_text(query)
        if key:
            distinct.setdefault(key, query)
    # every query in one batched pass, off the event loop
    answers = await asyncio.to_thread(
        candidates_for_items, index, list(distinct.values()), catalog_texts, k=k
    )
    best: dict[str, Candidate] = {}
    hits: dict[str, int] = {}
    scores: dict[str, dict[str, float]] = {}  # normalised query -> record -> score
    for key, candidates in zip(distinct, answers, strict=True):
        scores[key] = {c.catalog_id: c.score for c in candidates}
        for candidate in candidates:
            hits[candidate.catalog_id] = hits.get(candidate.catalog_id, 0) + 1
            known = best.get(candidate.catalog_id)
            if known is None or candidate.score > known.score:
                best[candidate.catalog_id] = candidate

    def run(query: str) -> dict[str, float]:
        return scores.get(normalise_text(query), {})

    own = run(item_text)
    by_result = []
    for queries in per_result:
        merged: dict[str, float] = {}
        for query in queries:
            for catalog_id, score in run(query).items():
                merged[catalog_id] = max(score, merged.get(catalog_id, 0.0))
        by_result.append(merged)
    ranked = sorted(best.values(), key=lambda c: (-c.score, -hits[c.catalog_id], c.catalog_id))
    return WebCandidates(tuple(found), tuple(by_result), own, tuple(ranked[:k]))


def _result_queries(item_text: str, item_codes: frozenset[str], result: SearchResult) -> list[str]:
    queries = [product_name(result)]
    new_codes = sorted(extract_codes(f"{result.title} {result.content}") - item_codes)
    if new_codes:
        queries.append(" ".join([item_text, *new_codes[:MAX_CODES_PER_RESULT]]))
    return queries


async def find_candidates(
    index: CatalogIndex,
    item_text: str,
    provider: SearchProvider,
    *,
    catalog_texts: Mapping[str, str],
    k: int = DEFAULT_CANDIDATES,
    results: int = DEFAULT_SEARCH_RESULTS,
) -> list[Candidate]:
    """Search the web for ``item_text`` and return the ``k`` best catalog candidates it
    leads to (the ``candidates`` of :func:`search_candidates`), for an LLM to decide."""
    found = await search_candidates(
        index, item_text, provider, catalog_texts=catalog_texts, k=k, results=results
    )
    return list(found.candidates)
