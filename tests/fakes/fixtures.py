"""Pytest fixtures for the fakes; import every fixture a test uses, with its dependencies.

Each is defined as ``<name>_fixture`` and registered as ``<name>``, so importing it
does not shadow the test's argument::

    from tests.fakes.fixtures import fake_openai_fixture, fake_openai_server_fixture  # noqa: F401

``fake_openai`` / ``fake_searxng`` are reset per test (faults, latency, counters)
but the servers live for the session. ``openai_client`` is an ``AsyncOpenAI`` with
``max_retries=0`` (the LLM stage owns retries) and the secret :data:`FAKE_API_KEY`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest

from tests.fakes.http import free_port
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.searxng_server import FakeSearxng

FAKE_API_KEY = "sk-fake-SECRET-d41d8cd98f00b204"
CLIENT_TIMEOUT_SECONDS = 5.0


@pytest.fixture(scope="session", name="fake_openai_server")
def fake_openai_server_fixture() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="fake_openai")
def fake_openai_fixture(fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


@pytest.fixture(name="openai_client")
async def openai_client_fixture(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key=FAKE_API_KEY,
        base_url=f"{fake_openai.url}/v1",
        max_retries=0,
        timeout=CLIENT_TIMEOUT_SECONDS,
    )
    async with client:
        yield client


@pytest.fixture(scope="session", name="fake_searxng_server")
def fake_searxng_server_fixture() -> Iterator[FakeSearxng]:
    server = FakeSearxng()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="fake_searxng")
def fake_searxng_fixture(fake_searxng_server: FakeSearxng) -> Iterator[FakeSearxng]:
    fake_searxng_server.reset()
    yield fake_searxng_server
    fake_searxng_server.reset()


@pytest.fixture(name="search_http")
async def search_http_fixture() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_SECONDS) as client:
        yield client


@pytest.fixture(name="refused_url")
def refused_url_fixture() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"
