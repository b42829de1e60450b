"""The LLM stage: a chat model picks which candidate, if any, is the same entity as an item.

:class:`LLMDecider` sends items in batches (several items per request) to any
OpenAI-compatible server through an injected ``openai.AsyncOpenAI``, runs batches
concurrently up to a bound, and retries what failed with exponential backoff and
jitter, honouring ``Retry-After``. Prompt and answer validation live in
:mod:`matching.llm_prompt`.

Retries belong to this layer, not to the client: create the client with
``max_retries=0``. Otherwise the client silently retries each request (twice by
default, waiting up to 120 s on a ``Retry-After``) inside one of our attempts, which
multiplies the attempts, hides the waits from the deadline and the shared rate-limit
pause, and makes a long ``Retry-After`` fail at once. (A client with retries is
used through ``client.with_options(max_retries=0)``, which shares its connections.)

>>> import openai
>>> client = openai.AsyncOpenAI(api_key="sk-…", base_url="http://127.0.0.1:8000/v1",
...                             max_retries=0)
>>> decider = LLMDecider(client, model="gpt-4o-mini")
>>> # result = await decider.decide([("a1", "sony dsc w120", [Candidate("b7", "Sony DSC-W120", 0.8)])])

Nothing in an error or a log line quotes the prompt, the model's text, the server's
error body or the API key: errors are fixed phrases plus an HTTP status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai
from openai.types.chat import ChatCompletion

from matching.backoff import backoff_delay, parse_retry_after
from matching.exceptions import InvalidArgumentError
from matching.index import DEFAULT_CANDIDATES, CatalogIndex
from matching.llm_prompt import (
    MAX_CANDIDATES,
    Candidate,
    LLMDecision,
    build_batch_request,
    parse_batch_response,
    question_key,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5
DEFAULT_CONCURRENCY = 4
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BACKOFF_BASE_SECONDS = 0.5
DEFAULT_BACKOFF_CAP_SECONDS = 30.0
DEFAULT_REQUEST_TIMEOUT_SECONDS = 20.0
DEFAULT_MAX_RETRY_AFTER_SECONDS = 60.0
"""A longer ``Retry-After`` is not waited out in-process: the items come back undecided."""

# The client's own timeout should fire first; this outer bound catches a server that
# trickles bytes slowly enough never to trip a per-read timeout.
_OVERALL_TIMEOUT_GRACE_SECONDS = 0.25

ERROR_TIMEOUT = "request timed out"
ERROR_CONNECTION = "connection failed"
ERROR_NOT_COMPLETION = "response is not a chat completion"
ERROR_TRUNCATED_ANSWER = "invalid answer: cut off at the token limit"
ERROR_REFUSED = "the model refused to answer"
ERROR_EMPTY_ANSWER = "invalid answer: empty"

# Statuses worth another attempt; any other 4xx will fail the same way again.
_RETRIABLE_STATUSES = frozenset({408, 409, 425, 429})

LLMItem = tuple[str, str, Sequence[Candidate]]
"""``(item_id, item_text, candidates)``: one question for the model."""


@dataclass(frozen=True, slots=True)
class LLMUsage:
    """Requests sent and tokens spent (from the responses' ``usage``); addable.

    >>> LLMUsage(1, 100, 20) + LLMUsage(2, 50, 10, cache_hits=3)
    LLMUsage(requests=3, prompt_tokens=150, completion_tokens=30, cache_hits=3)
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0

    def __add__(self, other: LLMUsage) -> LLMUsage:
        if not isinstance(other, LLMUsage):
            return NotImplemented
        return LLMUsage(
            self.requests + other.requests,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cache_hits + other.cache_hits,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class LLMItemFailure:
    """An item given up on after ``attempts`` requests; ``error`` is the last one.

    ``retry_after`` is the last ``Retry-After`` (seconds) the provider sent for it, if any;
    ``retriable`` is false when the provider refused the request itself (a 4xx other than
    429), true when it failed in a way that may pass (5xx, timeouts, invalid answers).
    """

    item_id: str
    error: str
    attempts: int
    retry_after: float | None = None
    retriable: bool = True


@dataclass(frozen=True, slots=True)
class DecideResult:
    """What :meth:`LLMDecider.decide` made of a chunk; every item is in exactly one list.

    ``undecided`` holds the ids of items neither decided nor given up on (the
    deadline came, or the provider asked for a pause longer than the decider
    waits): re-queue them, not before ``retry_after`` seconds when that is set.
    Decisions and failures keep the input order.
    """

    decisions: list[LLMDecision]
    failures: list[LLMItemFailure]
    usage: LLMUsage
    undecided: list[str] = field(default_factory=list)
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class CachedDecision:
    """A stored answer to a question (see :func:`~matching.llm_prompt.question_key`)."""

    catalog_id: str | None
    confidence: float
    reason: str


class RequestBudget(Protocol):
    """A requests/tokens-per-minute budget, possibly shared by many processes."""

    async def reserve(self, *, requests: int, tokens: int) -> float | None:
        """Take room for a request: ``None`` when taken, else seconds until there may be room."""
        ...


def estimate_tokens(items: Sequence[LLMItem]) -> int:
    """A generous estimate of a batch request's prompt and completion tokens (for budgets).

    About one token per three characters of prompt, plus room for each item's answer.
    """
    chars = sum(len(text) + sum(len(c.text) + 16 for c in cands) + 40 for _, text, cands in items)
    return chars // 3 + 400 + 80 * len(items)


class DecisionCache(Protocol):
    """A persistent store of answers keyed by :func:`~matching.llm_prompt.question_key`."""

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, CachedDecision]: ...

    async def put_many(self, entries: Mapping[str, CachedDecision]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Attempt:
    """The outcome of one request about some items."""

    decisions: list[LLMDecision]
    errors: dict[str, str]
    usage: LLMUsage
    retriable: bool = True
    retry_after: float | None = None


class LLMDecider:
    """Decide items with a chat model, in concurrent batches with bounded retries.

    ``client`` should be built with ``max_retries=0`` (see the module docstring).
    ``batch_size`` items share a request; at most ``concurrency`` requests are in
    flight at once, across every ``decide`` call on this decider. An item gets up
    to ``max_attempts`` requests; between them the decider sleeps a full-jitter
    exponential backoff (``backoff_base`` doubling up to ``backoff_cap`` seconds),
    or the provider's ``Retry-After`` when longer, and then pauses every batch of
    this decider until it has passed. ``request_timeout`` bounds one request.
    ``request_options`` are extra keyword arguments for ``chat.completions.create``
    (e.g. ``{"temperature": 0, "max_completion_tokens": 1000}``). ``cache`` answers
    questions asked before (see :class:`DecisionCache`). ``sleep``, ``clock`` (which
    must agree with ``sleep``) and ``rng`` are injectable for tests.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base: float = DEFAULT_BACKOFF_BASE_SECONDS,
        backoff_cap: float = DEFAULT_BACKOFF_CAP_SECONDS,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER_SECONDS,
        request_options: Mapping[str, Any] | None = None,
        cache: DecisionCache | None = None,
        budget: RequestBudget | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        for name, value in (
            ("batch_size", batch_size),
            ("concurrency", concurrency),
            ("max_attempts", max_attempts),
        ):
            if value < 1:
                raise InvalidArgumentError(f"{name} must be at least 1, got {value!r}")
        if request_timeout <= 0 or backoff_base < 0 or backoff_cap < 0 or max_retry_after < 0:
            raise InvalidArgumentError("timeouts and delays must not be negative")
        # This layer owns retries; a copy without them shares the client's connections.
        self._client = client if client.max_retries == 0 else client.with_options(max_retries=0)
        self._model = model
        self._budget = budget
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._request_timeout = request_timeout
        self._max_retry_after = max_retry_after
        self._request_options = dict(request_options or {})
        self._cache = cache
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(concurrency)
        self._paused_until = 0.0  # monotonic time before which no request is sent

    @property
    def model(self) -> str:
        return self._model

    async def decide(
        self, items: Sequence[LLMItem], *, deadline: float | None = None
    ) -> DecideResult:
        """Ask the model about every ``(item_id, text, candidates)``.

        ``deadline`` is a time on the decider's ``clock`` (:func:`time.monotonic`): no
        request starts after it, none runs more than a quarter second past it, and no
        retry is scheduled beyond it; items still open then come back in ``undecided``.
        An item without candidates is decided as no match without a request.
        Raises :class:`InvalidArgumentError` when an item id repeats.
        """
        ids = [str(item_id) for item_id, _, _ in items]
        if len(set(ids)) != len(ids):
            raise InvalidArgumentError("item ids must be unique within one decide() call")
        run = _Run(deadline, self._clock)
        asked: list[LLMItem] = []
        for item_id, text, candidates in items:
            if candidates:
                asked.append((str(item_id), text, list(candidates)[:MAX_CANDIDATES]))
            else:
                run.decided(LLMDecision(str(item_id), None, 1.0, "no catalog candidates"))
        keys = {item[0]: question_key(self._model, item[1], item[2]) for item in asked}
        asked = await self._answer_from_cache(asked, keys, run)
        async with asyncio.TaskGroup() as group:
            for start in range(0, len(asked), self._batch_size):
                group.create_task(self._decide_batch(asked[start : start + self._batch_size], run))
        await self._store_in_cache(keys, run)
        return run.result(ids)

    async def _answer_from_cache(
        self, items: list[LLMItem], keys: dict[str, str], run: _Run
    ) -> list[LLMItem]:
        if self._cache is None or not items:
            return items
        try:
            found = await self._cache.get_many(sorted(set(keys.values())))
        except Exception as exc:
            log.warning(
                "LLM decision cache lookup failed (%s); asking the model", type(exc).__name__
            )
            return items
        remaining = []
        for item in items:
            cached = found.get(keys[item[0]])
            offered = {c.catalog_id for c in item[2]}
            if cached is None or (
                cached.catalog_id is not None and cached.catalog_id not in offered
            ):
                remaining.append(item)
            else:
                run.decided(
                    LLMDecision(item[0], cached.catalog_id, cached.confidence, cached.reason)
                )
                run.usage += LLMUsage(cache_hits=1)
        return remaining

    async def _store_in_cache(self, keys: dict[str, str], run: _Run) -> None:
        if self._cache is None or not run.fresh:
            return
        entries = {
            keys[d.item_id]: CachedDecision(d.catalog_id, d.confidence, d.reason) for d in run.fresh
        }
        try:
            await self._cache.put_many(entries)
        except Exception as exc:
            log.warning("LLM decision cache store failed (%s)", type(exc).__name__)

    async def _decide_batch(self, batch: list[LLMItem], run: _Run) -> None:
        pending = batch
        attempts = dict.fromkeys((item[0] for item in batch), 0)
        retry = 0
        while pending:
            async with self._slots:
                # Checked after taking a slot: batches queued for one must see a pause
                # that began while they waited.
                if not await self._wait_for_pause(pending, run):
                    return
                timeout = run.time_left(self._request_timeout)
                if timeout <= 0:
                    run.postpone(pending)
                    return
                if self._budget is not None:
                    wait = await self._budget.reserve(requests=1, tokens=estimate_tokens(pending))
                    if wait is not None:  # the shared budget is spent for now: hold every batch
                        if wait > self._max_retry_after or (
                            run.deadline is not None and self._clock() + wait >= run.deadline
                        ):
                            run.postpone(pending, retry_after=wait)
                            return
                        self._pause_for(wait)
                        continue
                attempt = await self._ask(pending, timeout)
            run.usage += attempt.usage
            for decision in attempt.decisions:
                run.decided(decision, fresh=True)
            failed = [item for item in pending if item[0] in attempt.errors]
            for item in failed:
                attempts[item[0]] += 1
            if failed:
                log.info(
                    "LLM request for %d item(s) failed for %d: %s",
                    len(pending),
                    len(failed),
                    _summary(attempt.errors),
                )
            pending, given_up = [], []
            for item in failed:
                item_id = item[0]
                if not attempt.retriable or attempts[item_id] >= self._max_attempts:
                    given_up.append(item_id)
                    run.failed(
                        LLMItemFailure(
                            item_id,
                            attempt.errors[item_id],
                            attempts[item_id],
                            attempt.retry_after,
                            retriable=attempt.retriable,
                        )
                    )
                else:
                    pending.append(item)
            if given_up:
                log.warning(
                    "LLM gave up on %d item(s) (first %s): %s",
                    len(given_up),
                    given_up[0],
                    _summary({i: attempt.errors[i] for i in given_up}),
                )
            if not pending:
                return
            retry += 1
            delay = backoff_delay(
                retry, base=self._backoff_base, cap=self._backoff_cap, rng=self._rng
            )
            if attempt.retry_after is not None and attempt.retry_after > self._max_retry_after:
                log.warning(
                    "LLM provider asked to wait %.0f s (more than %.0f s); %d item(s) undecided",
                    attempt.retry_after,
                    self._max_retry_after,
                    len(pending),
                )
                run.postpone(pending, retry_after=attempt.retry_after)
                return
            if run.deadline is not None and self._clock() + delay >= run.deadline:
                run.postpone(pending, retry_after=attempt.retry_after)
                return
            if attempt.retry_after is not None:
                # The provider is overloaded, not just this batch: pause every batch.
                self._pause_for(max(delay, attempt.retry_after))
            else:
                await self._sleep(delay)

    async def _wait_for_pause(self, pending: list[LLMItem], run: _Run) -> bool:
        """Sleep out a provider-wide pause; ``False`` (items postponed) if it outlasts the deadline."""
        while (wait := (until := self._paused_until) - self._clock()) > 0:
            too_long = wait > self._max_retry_after
            if too_long or (run.deadline is not None and self._clock() + wait >= run.deadline):
                run.postpone(pending, retry_after=wait)
                return False
            await self._sleep(wait)
            if self._paused_until <= until:  # not extended meanwhile
                return True
        return True

    def _pause_for(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def _ask(self, items: list[LLMItem], timeout: float) -> _Attempt:
        request = build_batch_request(items, model=self._model)
        params = {**request.params, **self._request_options}
        every = [item[0] for item in items]
        try:
            async with asyncio.timeout(timeout + _OVERALL_TIMEOUT_GRACE_SECONDS):
                completion = await self._client.chat.completions.create(**params, timeout=timeout)
        except Exception as exc:
            error, retriable, retry_after = describe_api_error(exc)
            return _Attempt(
                [], dict.fromkeys(every, error), LLMUsage(requests=1), retriable, retry_after
            )
        content, usage = _read_completion(completion)
        if isinstance(content, _Failure):
            return _Attempt([], dict.fromkeys(every, content.error), usage)
        decisions, errors = parse_batch_response(content, request.mapping)
        return _Attempt(decisions, errors, usage)


def candidates_from_index(
    index: CatalogIndex,
    text: str,
    catalog_texts: Mapping[str, str],
    *,
    k: int = DEFAULT_CANDIDATES,
) -> list[Candidate]:
    """``index.candidates(text, k=k)`` with each record's text from ``catalog_texts``.

    Raises :class:`InvalidArgumentError` when a candidate's id has no text, since the
    model cannot judge a record it cannot read.

    >>> index = CatalogIndex.build([("b1", "Sony DSC-W120"), ("b2", "Sony DSC-W130")])
    >>> [c.catalog_id for c in candidates_from_index(index, "sony dsc w120",
    ...                                               {"b1": "Sony DSC-W120", "b2": "Sony DSC-W130"})]
    ['b1', 'b2']
    """
    [found] = candidates_for_items(index, [text], catalog_texts, k=k)
    return found


def candidates_for_items(
    index: CatalogIndex,
    texts: Sequence[str],
    catalog_texts: Mapping[str, str],
    *,
    k: int = DEFAULT_CANDIDATES,
) -> list[list[Candidate]]:
    """:func:`candidates_from_index` for many texts in one batched pass
    (:meth:`CatalogIndex.candidates_many`, each text scored on its own)."""
    found = index.candidates_many([("", t) for t in texts], k=k, rivals=False)
    out = []
    for results in found:
        candidates = []
        for r in results:
            if r.catalog_id not in catalog_texts:
                raise InvalidArgumentError(f"no text for catalog id {r.catalog_id!r}")
            candidates.append(Candidate(r.catalog_id, catalog_texts[r.catalog_id], r.score))
        out.append(candidates)
    return out


def describe_api_error(exc: BaseException) -> tuple[str, bool, float | None]:
    """``(error, retriable, retry_after)`` for an exception from the client.

    The error names the kind of fault and the HTTP status only: the exception's own
    message may quote the server's error body, which may quote the prompt.
    """
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return ERROR_TIMEOUT, True, None
    if isinstance(exc, openai.APIConnectionError):
        return ERROR_CONNECTION, True, None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = parse_retry_after(exc.response.headers)
        if status == 429:
            return "rate limited (HTTP 429)", True, retry_after
        if status >= 500:
            return f"server error (HTTP {status})", True, retry_after
        if status in _RETRIABLE_STATUSES:
            return f"request failed (HTTP {status})", True, retry_after
        return f"request rejected (HTTP {status})", False, None
    if isinstance(exc, openai.APIResponseValidationError):
        return ERROR_NOT_COMPLETION, True, None
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return "response body is not valid JSON", True, None
    return f"unexpected error ({type(exc).__name__})", True, None


@dataclass(frozen=True, slots=True)
class _Failure:
    error: str


def _read_completion(completion: object) -> tuple[str | _Failure, LLMUsage]:
    """The answer text of a completion (or why there is none) and its token usage."""
    if not isinstance(completion, ChatCompletion):
        # The client returns the body as text when it is not JSON at all.
        return _Failure(ERROR_NOT_COMPLETION), LLMUsage(requests=1)
    try:
        usage = LLMUsage(
            1,
            _count(getattr(completion.usage, "prompt_tokens", 0)),
            _count(getattr(completion.usage, "completion_tokens", 0)),
        )
        choice = completion.choices[0]
        message = choice.message
        if choice.finish_reason == "length":
            return _Failure(ERROR_TRUNCATED_ANSWER), usage
        if getattr(message, "refusal", None):
            return _Failure(ERROR_REFUSED), usage
        content = message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        return _Failure(ERROR_NOT_COMPLETION), LLMUsage(requests=1)
    if not isinstance(content, str) or not content.strip():
        return _Failure(ERROR_EMPTY_ANSWER), usage
    return content, usage


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _summary(errors: Mapping[str, str]) -> str:
    counts: dict[str, int] = {}
    for error in errors.values():
        counts[error] = counts.get(error, 0) + 1
    return "; ".join(f"{error} x{n}" for error, n in counts.items())


class _Run:
    """The bookkeeping of one ``decide`` call (all tasks run on one event loop)."""

    def __init__(self, deadline: float | None, clock: Callable[[], float]) -> None:
        self.deadline = deadline
        self._clock = clock
        self.usage = LLMUsage()
        self.decisions: dict[str, LLMDecision] = {}
        self.fresh: list[LLMDecision] = []
        self.failures: dict[str, LLMItemFailure] = {}
        self.undecided: set[str] = set()
        self.retry_after: float | None = None

    def time_left(self, cap: float) -> float:
        if self.deadline is None:
            return cap
        return min(cap, self.deadline - self._clock())

    def decided(self, decision: LLMDecision, *, fresh: bool = False) -> None:
        self.decisions[decision.item_id] = decision
        if fresh:
            self.fresh.append(decision)

    def failed(self, failure: LLMItemFailure) -> None:
        self.failures[failure.item_id] = failure

    def postpone(self, items: Sequence[LLMItem], *, retry_after: float | None = None) -> None:
        self.undecided.update(item[0] for item in items)
        if retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, retry_after)

    def result(self, order: list[str]) -> DecideResult:
        return DecideResult(
            decisions=[self.decisions[i] for i in order if i in self.decisions],
            failures=[self.failures[i] for i in order if i in self.failures],
            usage=self.usage,
            undecided=[i for i in order if i in self.undecided],
            retry_after=self.retry_after,
        )
