"""The external providers a process talks to: an OpenAI-compatible chat model and a web
search API, built from settings only (never from a request), opened and closed with the
process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx
import openai

from matching.llm import CachedDecision, LLMDecider
from matching.websearch import SearxngSearch
from service.settings import Settings
from service.store import Store


class PgDecisionCache:
    """LLM answers kept in PostgreSQL, shared by every job and process."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, CachedDecision]:
        found = await self.store.cached_answers(keys)
        return {k: CachedDecision(*v) for k, v in found.items()}

    async def put_many(self, entries: Mapping[str, CachedDecision]) -> None:
        await self.store.cache_answers(
            {k: (d.catalog_id, d.confidence, d.reason) for k, d in entries.items()}
        )


class PgRequestBudget:
    """The LLM provider's requests/tokens-per-minute budget, shared through PostgreSQL by
    every process driving jobs (a reservation is one atomic upsert on this minute's row)."""

    PROVIDER = "llm"

    def __init__(self, store: Store, *, requests_per_minute: int, tokens_per_minute: int) -> None:
        self.store = store
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute

    async def reserve(self, *, requests: int, tokens: int) -> float | None:
        return await self.store.reserve_budget(
            self.PROVIDER,
            requests=requests,
            tokens=tokens,
            max_requests=self.requests_per_minute,
            max_tokens=self.tokens_per_minute,
        )


class Providers:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(20.0))
        self.openai: openai.AsyncOpenAI | None = None
        if settings.openai_api_key and settings.llm_model:
            # the LLM stage owns retries (backoff, Retry-After, attempts): none in the client
            self.openai = openai.AsyncOpenAI(
                api_key=settings.openai_api_key,
                base_url=settings.openai_base_url,
                max_retries=0,
                timeout=20.0,
            )
        self.search = SearxngSearch(self.http, settings.search_url) if settings.search_url else None
        self.decider: LLMDecider | None = None
        if self.openai is not None:
            self.decider = LLMDecider(
                self.openai,
                model=settings.llm_model or "",
                batch_size=settings.llm_batch_size,
                concurrency=settings.llm_concurrency,
                max_attempts=settings.llm_max_attempts,
                cache=PgDecisionCache(store),
                budget=self._budget(store),
            )

    def _budget(self, store: Store) -> PgRequestBudget | None:
        s = self.settings
        if not (s.llm_requests_per_minute or s.llm_tokens_per_minute):
            return None
        return PgRequestBudget(
            store,
            requests_per_minute=s.llm_requests_per_minute,
            tokens_per_minute=s.llm_tokens_per_minute,
        )

    def missing_settings(self) -> dict[str, list[str]]:
        """Per stage, the settings this server lacks to run it."""
        missing: dict[str, list[str]] = {}
        llm = [
            name
            for name, value in (
                ("OPENAI_API_KEY", self.settings.openai_api_key),
                ("CHUNKMATCH_LLM_MODEL", self.settings.llm_model),
            )
            if not value
        ]
        if llm:
            missing["ai"] = llm
        if not self.settings.search_url:
            missing["web-search"] = ["CHUNKMATCH_SEARCH_URL"]
        return missing

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        s = self.settings
        return (
            prompt_tokens * s.llm_price_in_per_million
            + completion_tokens * s.llm_price_out_per_million
        ) / 1_000_000

    async def close(self) -> None:
        await self.http.aclose()
        if self.openai is not None:
            await self.openai.close()
