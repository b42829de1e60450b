"""Speed and cost of the LLM stage against the fake OpenAI-compatible server.

Run: ``.venv/bin/python benchmarks/llm_stage.py [--latency 0.3] [--items 10]``.
Candidates come from a real ``CatalogIndex`` over the synthetic catalog; the fake
server answers after ``--latency`` seconds by its word-overlap rule, so only the
timing, request and token figures mean anything (not the answers' quality).
Each scenario prints wall time, requests per item and tokens per item, first
without faults, then with faults injected (real backoff sleeps, real timeouts).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai  # noqa: E402

from benchmarks.synthetic import make_synthetic  # noqa: E402
from matching import CatalogIndex  # noqa: E402
from matching.llm import LLMDecider, LLMItem, candidates_from_index  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Fault  # noqa: E402

CANDIDATES_PER_ITEM = 10

SCENARIOS: list[tuple[str, dict[str, int], list[Fault]]] = [
    ("batch 5, concurrency 4", {"batch_size": 5, "concurrency": 4}, []),
    ("batch 1, concurrency 4", {"batch_size": 1, "concurrency": 4}, []),
    ("batch 5, one 429 (Retry-After 1 s)", {"batch_size": 5, "concurrency": 4}, [("429", 1)]),
    ("batch 5, 500 then 502", {"batch_size": 5, "concurrency": 4}, ["500", "502"]),
    ("batch 5, timeout (1 s request timeout)", {"batch_size": 5, "concurrency": 4}, ["timeout"]),
    (
        "batch 5, drop + not_json + bad_schema + unknown_candidate",
        {"batch_size": 5, "concurrency": 4},
        ["drop", "not_json", "bad_schema", "unknown_candidate"],
    ),
    ("batch 5, 503 on the next 8 requests", {"batch_size": 5, "concurrency": 4}, ["503"] * 8),
]


def build_chunk(n_items: int, seed: int) -> list[LLMItem]:
    catalog, items, _ = make_synthetic(2_000, max(n_items, 50), seed)
    texts = {row["id"]: row["name"] for row in catalog}
    index = CatalogIndex.build(list(texts.items()))
    return [
        (
            row["id"],
            row["name"],
            candidates_from_index(index, row["name"], texts, k=CANDIDATES_PER_ITEM),
        )
        for row in items[:n_items]
    ]


async def run(latency: float, chunk: list[LLMItem]) -> None:
    fake = FakeOpenAI()
    fake.start()
    try:
        client = openai.AsyncOpenAI(
            api_key="sk-benchmark", base_url=f"{fake.url}/v1", max_retries=0
        )
        async with client:
            print(
                f"{len(chunk)} items, {CANDIDATES_PER_ITEM} candidates each, "
                f"fake latency {latency * 1000:.0f} ms"
            )
            print(
                f"{'scenario':58} {'wall s':>7} {'req/item':>9} {'tok/item':>9} "
                f"{'decided':>8} {'failed':>7}"
            )
            for name, options, faults in SCENARIOS:
                fake.reset()
                fake.latency = latency
                fake.hang_seconds = 3.0
                fake.add_faults(*faults)
                decider = LLMDecider(
                    client,
                    model="fake-model",
                    request_timeout=1.0,
                    max_attempts=4,
                    backoff_base=0.25,
                    **options,  # type: ignore[arg-type]
                )
                started = time.perf_counter()
                result = await decider.decide(chunk)
                wall = time.perf_counter() - started
                usage = result.usage
                print(
                    f"{name:58} {wall:7.2f} {usage.requests / len(chunk):9.2f} "
                    f"{usage.total_tokens / len(chunk):9.0f} {len(result.decisions):8d} "
                    f"{len(result.failures):7d}"
                )
    finally:
        fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.3, help="fake server latency, s")
    parser.add_argument("--items", type=int, default=10, help="items in the chunk")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    chunk = build_chunk(args.items, args.seed)
    asyncio.run(run(args.latency, chunk))


if __name__ == "__main__":
    main()
