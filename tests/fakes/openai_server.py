"""A fake OpenAI-compatible server: ``POST /v1/chat/completions`` on 127.0.0.1.

It reads the batch prompt built by :func:`matching.llm_prompt.build_batch_request`
(the user message is JSON listing items and their labelled candidates) and answers
every item by a deterministic rule: the candidate sharing the largest fraction of
words with the item (Jaccard), or ``null`` below :data:`MIN_OVERLAP`. Tests may set
:attr:`FakeOpenAI.answer` to script answers instead.

Faults are queued with :meth:`FakeOpenAI.add_faults`; each applies to one request,
in order of arrival:

``("429", seconds)``, ``("503", seconds)``  status with ``Retry-After`` (``None``: no header)
``"500"``, ``"502"``, ``"503"``  server errors (502 with an HTML body, as from a proxy);
                     any other status code works too (``"400"``, ``"401"``)
``"timeout"``        no answer for :attr:`FakeOpenAI.hang_seconds`, then close
``"drop"``           close the connection without answering
``"truncated"``      a completion body cut off before its ``Content-Length``
``"cut_json"``       a well-framed response whose JSON body ends halfway
``"not_json"``       ``200`` with an HTML body
``"bad_schema"``     a completion whose content is JSON that breaks the schema
``"unknown_candidate"``  the first item's match is a key that was not offered
``"length"``         a completion cut off at the token limit (``finish_reason: length``)

Error bodies deliberately quote the start of the prompt, as some servers do, so
tests can check that the prompt never reaches our errors or logs.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http import Drop, FakeHTTPServer, Hang, Outcome, Reply, Request

MIN_OVERLAP = 0.34
"""Jaccard word overlap below which the default rule answers ``null``."""

CHARS_PER_TOKEN = 4

Fault = str | tuple[str, float | None]
AnswerRule = Callable[[str, list[tuple[str, str]]], "str | None"]

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def overlap_rule(item_text: str, candidates: list[tuple[str, str]]) -> str | None:
    """The key of the candidate with the highest Jaccard word overlap, or ``None``."""
    item = words(item_text)
    best_key, best = None, 0.0
    for key, text in candidates:
        other = words(text)
        union = item | other
        score = len(item & other) / len(union) if union else 0.0
        if score > best:
            best_key, best = key, score
    return best_key if best >= MIN_OVERLAP else None


@dataclass
class OpenAICounters:
    requests: int = 0
    answered_requests: int = 0
    items_answered: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    authorizations: set[str] = field(default_factory=set)
    batch_sizes: list[int] = field(default_factory=list)


class FakeOpenAI(FakeHTTPServer):
    """The fake server; read its :attr:`counters` after a test, :meth:`reset` between tests."""

    def __init__(self) -> None:
        super().__init__()
        self.latency = 0.0
        self.hang_seconds = 5.0
        self.answer: AnswerRule = overlap_rule
        self.faults: deque[Fault] = deque()
        self.counters = OpenAICounters()

    def reset(self) -> None:
        with self.lock:
            self.latency = 0.0
            self.hang_seconds = 5.0
            self.answer = overlap_rule
            self.faults.clear()
            self.counters = OpenAICounters()

    def add_faults(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    async def handle(self, request: Request) -> Outcome:
        if request.method != "POST" or request.path.rstrip("/") != "/v1/chat/completions":
            return _error(404, "no such route", "")
        with self.lock:
            counters = self.counters
            counters.requests += 1
            counters.in_flight += 1
            counters.peak_in_flight = max(counters.peak_in_flight, counters.in_flight)
            counters.authorizations.add(request.headers.get("authorization", ""))
            fault = self.faults.popleft() if self.faults else None
            latency, hang, rule = self.latency, self.hang_seconds, self.answer
        try:
            if latency:
                await asyncio.sleep(latency)
            return self._respond(request, fault, hang, rule, counters)
        finally:
            with self.lock:
                counters.in_flight -= 1

    def _respond(
        self,
        request: Request,
        fault: Fault | None,
        hang: float,
        rule: AnswerRule,
        counters: OpenAICounters,
    ) -> Outcome:
        name, retry_after = (fault, None) if not isinstance(fault, tuple) else fault
        try:
            body = json.loads(request.body)
            prompt = body["messages"][-1]["content"]
            items = json.loads(prompt)["items"]
        except (ValueError, KeyError, IndexError, TypeError):
            return _error(400, "could not read the batch prompt", "")
        if name is not None and name.isdigit():
            return _error(int(name), "fault injected", prompt, retry_after)
        if name == "timeout":
            return Hang(hang)
        if name == "drop":
            return Drop()
        if name == "not_json":
            html = b"<html><body><h1>Service temporarily unavailable</h1></body></html>"
            return Reply(200, html, content_type="text/html")

        decisions = []
        for position, item in enumerate(items):
            offered = [(c["key"], c["text"]) for c in item["candidates"]]
            key = rule(item["text"], offered)
            if name == "unknown_candidate" and position == 0:
                key = "c99"
            confidence = 0.9 if key is not None else 0.6
            decisions.append(
                {
                    "item": item["item"],
                    "match": key,
                    "confidence": confidence,
                    "reason": "fake rule",
                }
            )
        if name == "bad_schema":
            content = json.dumps({"answers": [{"item": d["item"], "pick": 1} for d in decisions]})
        else:
            content = json.dumps({"decisions": decisions})
        prompt_tokens = sum(len(m.get("content", "")) for m in body["messages"]) // CHARS_PER_TOKEN
        completion_tokens = max(1, len(content) // CHARS_PER_TOKEN)
        with self.lock:
            counters.answered_requests += 1
            counters.items_answered += len(items)
            counters.batch_sizes.append(len(items))
            counters.prompt_tokens += prompt_tokens
            counters.completion_tokens += completion_tokens
        completion = _completion(
            body.get("model", "fake"),
            content,
            prompt_tokens,
            completion_tokens,
            finish_reason="length" if name == "length" else "stop",
        )
        encoded = json.dumps(completion).encode()
        if name == "truncated":
            return Reply(200, encoded, truncate_at=len(encoded) // 2)
        if name == "cut_json":
            return Reply(200, encoded[: len(encoded) // 2])
        return Reply(200, encoded)


def _completion(
    model: str, content: str, prompt_tokens: int, completion_tokens: int, *, finish_reason: str
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error(status: int, message: str, prompt: str, retry_after: float | None = None) -> Reply:
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    if status == 502:
        return Reply(status, b"<html>502 Bad Gateway</html>", "text/html", headers)
    # Some servers echo the request in their errors; ours must never pass it on.
    echoed = f"{message}; request began: {prompt[:200]}" if prompt else message
    body = {"error": {"message": echoed, "type": "fake_error", "code": str(status)}}
    return Reply(status, json.dumps(body).encode(), headers=headers)
