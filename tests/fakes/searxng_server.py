"""A fake SearxNG: ``GET /search?q=…&format=json`` on 127.0.0.1.

By default it searches :attr:`FakeSearxng.pages` (``{"title", "url", "content"}``
dicts) and returns those sharing a word with the query, most shared words first.
Faults, one per request as queued with :meth:`FakeSearxng.add_faults`:
``("429", seconds)``, ``"500"``, ``"502"``, ``"503"``, ``"timeout"``, ``"drop"``,
``"truncated"``, ``"not_json"``, ``"bad_schema"``.
Like a SearxNG without the JSON format enabled, ``format`` other than ``json`` gets 403.

With :attr:`FakeSearxng.decoys` set (pages of other, real products), every answer is
*mixed*, as a real engine's often is: the best page found (if any), one decoy and
:data:`JUNK_PAGES`, in an order and with a decoy that depend on the query alone (so the
right product is not always first).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections import deque
from dataclasses import dataclass, field

from tests.fakes.http import Drop, FakeHTTPServer, Hang, Outcome, Reply, Request
from tests.fakes.openai_server import Fault, words

JUNK_PAGES = (
    {
        "title": "Today's top deals | DealFinder",
        "url": "https://deals.example/",
        "content": "Save big.",
    },
    {"title": "Sign in or create an account", "url": "https://account.example/", "content": ""},
)


def mixed_results(query: str, found: list[dict[str, str]], decoys: list[dict[str, str]]) -> list:
    """The best of ``found``, a decoy and the junk pages, shuffled by the query's hash."""
    seed = zlib.crc32(query.encode())
    results = [*found[:1], decoys[seed % len(decoys)], *JUNK_PAGES]
    turn = (seed >> 8) % len(results)
    return results[turn:] + results[:turn]


@dataclass
class SearchCounters:
    requests: int = 0
    queries: list[str] = field(default_factory=list)


class FakeSearxng(FakeHTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.latency = 0.0
        self.hang_seconds = 5.0
        self.pages: list[dict[str, str]] = []
        self.decoys: list[dict[str, str]] = []
        self.faults: deque[Fault] = deque()
        self.counters = SearchCounters()

    def reset(self) -> None:
        with self.lock:
            self.latency = 0.0
            self.hang_seconds = 5.0
            self.pages = []
            self.decoys = []
            self.faults.clear()
            self.counters = SearchCounters()

    def add_faults(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    async def handle(self, request: Request) -> Outcome:
        if request.method != "GET" or request.path.rstrip("/") != "/search":
            return Reply(404, b'{"error": "not found"}')
        query = (request.query.get("q") or [""])[0]
        with self.lock:
            self.counters.requests += 1
            self.counters.queries.append(query)
            fault = self.faults.popleft() if self.faults else None
            latency, hang, pages = self.latency, self.hang_seconds, list(self.pages)
            decoys = list(self.decoys)
        if latency:
            await asyncio.sleep(latency)
        name, retry_after = (fault, None) if not isinstance(fault, tuple) else fault
        if (request.query.get("format") or [""])[0] != "json":
            return Reply(403, b"<html>403 Forbidden</html>", "text/html")
        if name is not None and name.isdigit():
            headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
            return Reply(int(name), b"<html>error</html>", "text/html", headers)
        if name == "timeout":
            return Hang(hang)
        if name == "drop":
            return Drop()
        if name == "not_json":
            return Reply(200, b"<html>results</html>", "text/html")
        if name == "bad_schema":
            return Reply(200, json.dumps({"results": {"title": "not a list"}}).encode())
        wanted = words(query)
        scored = [(len(wanted & words(f"{p.get('title')} {p.get('content')}")), p) for p in pages]
        results = [p for n, p in sorted(scored, key=lambda pair: -pair[0]) if n > 0]
        if decoys:
            results = mixed_results(query, results, decoys)
        body = json.dumps(
            {"query": query, "number_of_results": len(results), "results": results}
        ).encode()
        if name == "truncated":
            return Reply(200, body, truncate_at=len(body) // 2)
        return Reply(200, body)
