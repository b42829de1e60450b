"""Fake external services over real loopback HTTP: an OpenAI-compatible server and SearxNG.

Use the pytest fixtures by importing them into a test module (or a conftest)::

    from tests.fakes.fixtures import (  # noqa: F401
        fake_openai_fixture,
        fake_openai_server_fixture,
        openai_client_fixture,
    )
"""

from __future__ import annotations

from tests.fakes.http import FakeHTTPServer, free_port
from tests.fakes.openai_server import FakeOpenAI, overlap_rule
from tests.fakes.searxng_server import FakeSearxng

__all__ = ["FakeHTTPServer", "FakeOpenAI", "FakeSearxng", "free_port", "overlap_rule"]
