"""SearxngSearch against a fake SearxNG over real loopback HTTP."""

from __future__ import annotations

import httpx
import pytest

from matching.exceptions import InvalidArgumentError
from matching.websearch import SearchError, SearchProvider, SearchResult, SearxngSearch
from tests.fakes.fixtures import (  # noqa: F401
    fake_searxng_fixture,
    fake_searxng_server_fixture,
    refused_url_fixture,
    search_http_fixture,
)
from tests.fakes.searxng_server import FakeSearxng

PAGES = [
    {
        "title": "Sony Cyber-shot DSC-W120 Digital Camera | Example Shop",
        "url": "https://shop.example/w120",
        "content": "The Sony DSC-W120 has a 7.2 megapixel sensor.",
    },
    {
        "title": "Linksys EZXS88W 8-Port Switch",
        "url": "https://net.example/ezxs88w",
        "content": "Linksys EtherFast switch.",
    },
    {"title": "Sony W130 review", "url": "https://reviews.example/w130", "content": "Sony"},
]
SECRET_QUERY = "confidential item 4711 sony"


def provider(fake: FakeSearxng, client: httpx.AsyncClient) -> SearxngSearch:
    return SearxngSearch(client, fake.url + "/", timeout=0.5, params={"language": "en"})


async def test_search_returns_results_in_order_up_to_the_limit(
    fake_searxng: FakeSearxng, search_http: httpx.AsyncClient
) -> None:
    fake_searxng.pages = PAGES
    search: SearchProvider = provider(fake_searxng, search_http)
    results = await search.search("  sony   dsc-w120 ", limit=2)
    assert results == [
        SearchResult(PAGES[0]["title"], PAGES[0]["url"], PAGES[0]["content"]),
        SearchResult(PAGES[2]["title"], PAGES[2]["url"], PAGES[2]["content"]),
    ]
    assert fake_searxng.counters.queries == ["sony dsc-w120"]


async def test_odd_results_are_skipped_and_missing_snippets_are_empty(
    fake_searxng: FakeSearxng, search_http: httpx.AsyncClient
) -> None:
    fake_searxng.pages = [
        {"title": "Sony A", "url": "https://a.example", "content": None},  # type: ignore[dict-item]
        {"title": "Sony B", "url": 7, "content": "x"},  # type: ignore[dict-item]
        {"title": "Sony C", "url": "https://c.example", "content": "snippet"},
    ]
    results = await provider(fake_searxng, search_http).search("sony")
    assert [(r.title, r.content) for r in results] == [("Sony A", ""), ("Sony C", "snippet")]


@pytest.mark.parametrize(
    ("fault", "message", "status", "retry_after", "retriable"),
    [
        (("429", 600), "search failed (HTTP 429)", 429, 600.0, True),
        ("500", "search failed (HTTP 500)", 500, None, True),
        ("502", "search failed (HTTP 502)", 502, None, True),
        (("503", 5), "search failed (HTTP 503)", 503, 5.0, True),
        ("403", "search failed (HTTP 403)", 403, None, False),
        ("timeout", "search timed out", None, None, True),
        ("drop", "search connection failed (RemoteProtocolError)", None, None, True),
        ("truncated", "search connection failed (RemoteProtocolError)", None, None, True),
        ("not_json", "search response is not JSON", 200, None, False),
        ("bad_schema", "search response does not have a results list", 200, None, False),
    ],
    ids=str,
)
async def test_faults_raise_a_typed_error(
    fake_searxng: FakeSearxng,
    search_http: httpx.AsyncClient,
    fault: object,
    message: str,
    status: int | None,
    retry_after: float | None,
    retriable: bool,
) -> None:
    fake_searxng.pages = PAGES
    fake_searxng.hang_seconds = 2.0
    fake_searxng.add_faults(fault)  # type: ignore[arg-type]
    search = provider(fake_searxng, search_http)
    with pytest.raises(SearchError) as caught:
        await search.search(SECRET_QUERY)
    error = caught.value
    assert (str(error), error.status, error.retry_after, error.retriable) == (
        message,
        status,
        retry_after,
        retriable,
    )
    assert SECRET_QUERY not in str(error)
    # The next request, without a fault, works on the same client.
    assert len(await search.search("sony")) == 2


async def test_a_server_without_json_format_is_reported(
    fake_searxng: FakeSearxng, search_http: httpx.AsyncClient
) -> None:
    response = await search_http.get(fake_searxng.url + "/search", params={"q": "sony"})
    assert response.status_code == 403  # the fake behaves like SearxNG without format=json


async def test_connection_refused(refused_url: str, search_http: httpx.AsyncClient) -> None:
    with pytest.raises(SearchError, match=r"search connection failed \(ConnectError\)"):
        await SearxngSearch(search_http, refused_url).search("sony")


async def test_limit_must_be_positive(
    fake_searxng: FakeSearxng, search_http: httpx.AsyncClient
) -> None:
    with pytest.raises(InvalidArgumentError):
        await provider(fake_searxng, search_http).search("sony", limit=0)
