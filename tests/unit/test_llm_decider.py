"""LLMDecider against a fake OpenAI-compatible server over real loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence

import openai
import pytest

from matching.exceptions import InvalidArgumentError
from matching.llm import CachedDecision, LLMDecider, LLMUsage
from matching.llm_prompt import ERROR_SCHEMA, ERROR_UNKNOWN_CANDIDATE, Candidate
from tests.fakes.fixtures import (  # noqa: F401
    FAKE_API_KEY,
    fake_openai_fixture,
    fake_openai_server_fixture,
    openai_client_fixture,
    refused_url_fixture,
)
from tests.fakes.openai_server import FakeOpenAI

MODEL = "fake-model"


class RecordedSleep:
    """An injected ``sleep`` that records the delays asked for and returns at once,
    moving the decider's clock on by the same amount (pass ``clock=sleep.clock``)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.skipped = 0.0

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.skipped += seconds
        await asyncio.sleep(0)

    def clock(self) -> float:
        return time.monotonic() + self.skipped


def chunk(n: int) -> tuple[list[tuple[str, str, list[Candidate]]], dict[str, str]]:
    """``n`` items, each with one right candidate among distractors, and the right answers."""
    items, expected = [], {}
    for i in range(n):
        right = Candidate(f"cat-{i}", f"Acme Roadster {i} bicycle frame red", 0.7)
        wrong = [
            Candidate(f"cat-{i}-x", f"Zenith Toaster {i} chrome slot", 0.5),
            Candidate(f"cat-{i}-y", f"Orbit Kettle {i} steel", 0.4),
        ]
        items.append((f"item-{i}", f"acme roadster {i} bicycle frame", [wrong[0], right, wrong[1]]))
        expected[f"item-{i}"] = f"cat-{i}"
    return items, expected


def make_decider(client: openai.AsyncOpenAI, **overrides: object) -> LLMDecider:
    sleep = overrides.pop("sleep", None) or RecordedSleep()
    assert isinstance(sleep, RecordedSleep)
    options: dict[str, object] = {
        "model": MODEL,
        "request_timeout": 2.0,
        "sleep": sleep,
        "clock": sleep.clock,
        "rng": random.Random(7),
    }
    options.update(overrides)
    return LLMDecider(client, **options)  # type: ignore[arg-type]


async def test_decides_a_chunk_in_batches(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    items, expected = chunk(10)
    result = await make_decider(openai_client, batch_size=5).decide(items)
    assert {d.item_id: d.catalog_id for d in result.decisions} == expected
    assert [d.item_id for d in result.decisions] == [i[0] for i in items]  # input order
    assert result.failures == [] and result.undecided == []
    assert result.usage.requests / len(items) <= 0.3
    assert fake_openai.counters.batch_sizes == [5, 5]
    assert result.usage.prompt_tokens == fake_openai.counters.prompt_tokens > 0
    assert result.usage.completion_tokens == fake_openai.counters.completion_tokens > 0
    assert fake_openai.counters.authorizations == {f"Bearer {FAKE_API_KEY}"}


async def test_no_match_is_a_decision_not_a_failure(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    items = [("a", "Quantum Blender 9000", [Candidate("b", "Acme Roadster bicycle", 0.3)])]
    result = await make_decider(openai_client).decide(items)
    assert [(d.item_id, d.catalog_id) for d in result.decisions] == [("a", None)]
    assert result.failures == []


async def test_items_without_candidates_need_no_request(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    result = await make_decider(openai_client).decide([("a", "anything", [])])
    assert [(d.item_id, d.catalog_id) for d in result.decisions] == [("a", None)]
    assert result.usage.requests == 0 and fake_openai.counters.requests == 0


async def test_repeated_item_ids_are_rejected(openai_client: openai.AsyncOpenAI) -> None:
    items, _ = chunk(1)
    with pytest.raises(InvalidArgumentError):
        await make_decider(openai_client).decide(items + items)


async def test_batches_run_concurrently(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.latency = 0.3
    items, expected = chunk(10)
    started = time.monotonic()
    result = await make_decider(openai_client, batch_size=5, concurrency=4).decide(items)
    elapsed = time.monotonic() - started
    assert {d.item_id: d.catalog_id for d in result.decisions} == expected
    assert fake_openai.counters.peak_in_flight == 2
    assert elapsed < 1.5, elapsed  # sequential would be >= 0.6 s; the benchmark prints the figure


async def test_concurrency_is_bounded(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.latency = 0.05
    items, expected = chunk(12)
    decider = make_decider(openai_client, batch_size=1, concurrency=3)
    result = await decider.decide(items)
    assert {d.item_id: d.catalog_id for d in result.decisions} == expected
    assert fake_openai.counters.peak_in_flight == 3


FAULTS_WITH_ERRORS = [
    (("429", None), "rate limited (HTTP 429)"),
    ("500", "server error (HTTP 500)"),
    ("502", "server error (HTTP 502)"),
    ("503", "server error (HTTP 503)"),
    ("timeout", "request timed out"),
    ("drop", "connection failed"),
    ("truncated", "connection failed"),
    ("cut_json", "response body is not valid JSON"),
    ("not_json", "response is not a chat completion"),
    ("bad_schema", ERROR_SCHEMA),
    ("length", "invalid answer: cut off at the token limit"),
]


@pytest.mark.parametrize(("fault", "error"), FAULTS_WITH_ERRORS, ids=lambda v: str(v))
async def test_a_fault_is_retried_then_decided(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, fault: object, error: str
) -> None:
    fake_openai.hang_seconds = 3.0
    fake_openai.add_faults(fault)  # type: ignore[arg-type]
    items, expected = chunk(3)
    sleep = RecordedSleep()
    decider = make_decider(openai_client, request_timeout=0.3, sleep=sleep)
    result = await decider.decide(items)
    assert {d.item_id: d.catalog_id for d in result.decisions} == expected
    assert result.failures == []
    assert result.usage.requests == fake_openai.counters.requests == 2
    assert len(sleep.delays) == 1 and 0.0 <= sleep.delays[0] <= 0.5


@pytest.mark.parametrize(("fault", "error"), FAULTS_WITH_ERRORS, ids=lambda v: str(v))
async def test_a_persistent_fault_ends_in_a_reported_failure(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, fault: object, error: str
) -> None:
    fake_openai.hang_seconds = 3.0
    fake_openai.add_faults(*[fault] * 3)  # type: ignore[list-item]
    items, _ = chunk(2)
    sleep = RecordedSleep()
    decider = make_decider(openai_client, request_timeout=0.3, max_attempts=3, sleep=sleep)
    result = await decider.decide(items)
    assert result.decisions == [] and result.undecided == []
    assert [(f.item_id, f.error, f.attempts) for f in result.failures] == [
        ("item-0", error, 3),
        ("item-1", error, 3),
    ]
    assert fake_openai.counters.requests == 3
    # full-jitter exponential backoff between attempts: bounded by 0.5 s, then 1 s
    assert len(sleep.delays) == 2
    assert 0 <= sleep.delays[0] <= 0.5 and 0 <= sleep.delays[1] <= 1.0


async def test_the_decider_owns_retries_even_if_the_client_has_its_own(
    fake_openai: FakeOpenAI,
) -> None:
    client = openai.AsyncOpenAI(api_key=FAKE_API_KEY, base_url=f"{fake_openai.url}/v1")
    assert client.max_retries == 2
    fake_openai.add_faults("500", "500")
    async with client:
        result = await make_decider(client, max_attempts=2).decide(chunk(1)[0])
    assert [(f.error, f.attempts) for f in result.failures] == [("server error (HTTP 500)", 2)]
    assert fake_openai.counters.requests == result.usage.requests == 2


async def test_connection_refused_is_retried_then_reported(refused_url: str) -> None:
    client = openai.AsyncOpenAI(api_key=FAKE_API_KEY, base_url=f"{refused_url}/v1", max_retries=0)
    async with client:
        result = await make_decider(client, max_attempts=2).decide(chunk(2)[0])
    assert [(f.error, f.attempts) for f in result.failures] == [("connection failed", 2)] * 2
    assert result.usage.requests == 2


@pytest.mark.parametrize("status", ["400", "401", "404"])
async def test_a_rejected_request_is_not_retried(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, status: str
) -> None:
    fake_openai.add_faults(status)
    result = await make_decider(openai_client).decide(chunk(2)[0])
    assert [(f.error, f.attempts) for f in result.failures] == [
        (f"request rejected (HTTP {status})", 1)
    ] * 2
    assert fake_openai.counters.requests == 1


async def test_an_invalid_item_is_retried_alone_and_others_count(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.add_faults("unknown_candidate")
    items, expected = chunk(4)
    result = await make_decider(openai_client, batch_size=4).decide(items)
    assert {d.item_id: d.catalog_id for d in result.decisions} == expected
    assert fake_openai.counters.batch_sizes == [4, 1]


async def test_an_impossible_candidate_never_becomes_a_match(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    def stubborn(item_text: str, candidates: list[tuple[str, str]]) -> str | None:
        return "c42" if "roadster 0 " in item_text else candidates[1][0]

    fake_openai.answer = stubborn
    items, expected = chunk(3)
    result = await make_decider(openai_client, max_attempts=3).decide(items)
    assert [(f.item_id, f.error, f.attempts) for f in result.failures] == [
        ("item-0", ERROR_UNKNOWN_CANDIDATE, 3)
    ]
    assert {d.item_id: d.catalog_id for d in result.decisions} == {
        k: v for k, v in expected.items() if k != "item-0"
    }


async def test_retry_after_is_honoured(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.add_faults(("429", 7), ("503", 2.5))
    sleep = RecordedSleep()
    result = await make_decider(openai_client, sleep=sleep).decide(chunk(2)[0])
    assert len(result.decisions) == 2 and result.failures == []
    assert len(sleep.delays) == 2
    assert 6.9 <= sleep.delays[0] <= 7.0
    assert 2.4 <= sleep.delays[1] <= 2.5


async def test_retry_after_pauses_every_batch(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.add_faults(("429", 9))
    requests_sent_at_sleep: list[int] = []

    class CountingSleep(RecordedSleep):
        async def __call__(self, seconds: float) -> None:
            requests_sent_at_sleep.append(fake_openai.counters.requests)
            await super().__call__(seconds)

    sleep = CountingSleep()
    decider = make_decider(openai_client, batch_size=1, concurrency=1, sleep=sleep)
    result = await decider.decide(chunk(3)[0])
    assert len(result.decisions) == 3
    # One pause, taken before any batch queued behind the rate-limited one was sent.
    assert len(sleep.delays) == 1 and 8.9 <= sleep.delays[0] <= 9.0
    assert requests_sent_at_sleep == [1]
    assert fake_openai.counters.requests == 4


async def test_a_retry_after_longer_than_we_wait_leaves_items_undecided(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    # 600 s is beyond the openai client's own 120 s cap, and beyond ours (60 s).
    fake_openai.add_faults(("429", 600))
    sleep = RecordedSleep()
    result = await make_decider(openai_client, sleep=sleep).decide(chunk(3)[0])
    assert result.decisions == [] and result.failures == []
    assert result.undecided == ["item-0", "item-1", "item-2"]
    assert result.retry_after == 600
    assert sleep.delays == [] and fake_openai.counters.requests == 1


async def test_repeated_rate_limits_fail_with_the_last_retry_after(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.add_faults(("429", 1), ("429", 3))
    result = await make_decider(openai_client, max_attempts=2).decide(chunk(1)[0])
    [failure] = result.failures
    assert (failure.error, failure.attempts, failure.retry_after) == (
        "rate limited (HTTP 429)",
        2,
        3.0,
    )


async def test_a_past_deadline_sends_nothing(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    items, _ = chunk(4)
    result = await make_decider(openai_client).decide(items, deadline=time.monotonic() - 1)
    assert result.undecided == [i[0] for i in items]
    assert fake_openai.counters.requests == 0


async def test_the_deadline_cuts_a_slow_request_short(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.latency = 3.0
    items, _ = chunk(3)
    started = time.monotonic()
    result = await make_decider(openai_client, request_timeout=10.0).decide(
        items, deadline=started + 0.4
    )
    elapsed = time.monotonic() - started
    assert result.undecided == [i[0] for i in items]
    assert result.decisions == [] and result.failures == []
    assert elapsed < 1.5, elapsed


async def test_a_deadline_before_the_next_retry_leaves_items_undecided(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.add_faults(("429", 30))
    result = await make_decider(openai_client).decide(chunk(2)[0], deadline=time.monotonic() + 5.0)
    assert result.undecided == ["item-0", "item-1"] and result.failures == []
    assert fake_openai.counters.requests == 1


async def test_no_secret_or_prompt_in_errors_or_logs(
    fake_openai: FakeOpenAI,
    openai_client: openai.AsyncOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The fake's error bodies quote the prompt, as some servers do.
    fake_openai.add_faults(("429", 0), "500", "bad_schema", "400")
    items, _ = chunk(2)
    result = await make_decider(openai_client, max_attempts=4).decide(items)
    assert len(result.failures) == 2
    exposed = caplog.text + " ".join(f.error for f in result.failures)
    assert "rate limited" in caplog.text  # the log did record the faults
    assert FAKE_API_KEY not in exposed
    assert "sk-fake" not in exposed
    for _, text, candidates in items:
        assert text not in exposed
        for candidate in candidates:
            assert candidate.text not in exposed
    assert "request began" not in exposed


class DictCache:
    def __init__(self) -> None:
        self.entries: dict[str, CachedDecision] = {}

    async def get_many(self, keys: Sequence[str]) -> Mapping[str, CachedDecision]:
        return {k: self.entries[k] for k in keys if k in self.entries}

    async def put_many(self, entries: Mapping[str, CachedDecision]) -> None:
        self.entries.update(entries)


async def test_a_cache_answers_repeated_questions(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    cache = DictCache()
    items, expected = chunk(6)
    decider = make_decider(openai_client, cache=cache)
    first = await decider.decide(items[:4])
    assert first.usage.cache_hits == 0 and len(cache.entries) == 4
    second = await decider.decide(items)
    assert {d.item_id: d.catalog_id for d in second.decisions} == expected
    assert second.usage.cache_hits == 4
    assert second.usage.requests == 1 and fake_openai.counters.batch_sizes == [4, 2]
    assert first.usage + second.usage == LLMUsage(
        2,
        fake_openai.counters.prompt_tokens,
        fake_openai.counters.completion_tokens,
        cache_hits=4,
    )
