"""Webhooks (Standard Webhooks 1.0): secrets, signatures, the address rules, and the
dispatcher that delivers the outbox.

A job's change writes its events and their deliveries in its own transaction (a trigger,
migration 012); here, whichever process runs a worker claims due deliveries with a lease
(one statement, ``FOR UPDATE SKIP LOCKED``: processes never send one concurrently), a job's
events one after the other for each webhook, and POSTs each, signed, until a 2xx or for
``CHUNKMATCH_WEBHOOK_RETRY_HOURS``, with exponential backoff and jitter between attempts.
A process that dies mid-delivery leaves a lease that runs out: the delivery is sent again
(at least once; receivers de-duplicate by ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from service import metrics
from service.engine import retry_delay
from service.exceptions import DatabaseUnavailable, ValidationError, shown
from service.models import WebhookAttempt, _iso
from service.settings import Settings
from service.store import Store

logger = logging.getLogger("chunkmatch.webhooks")

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_URL_LENGTH = 2048
DELIVERY_TIMEOUT_SECONDS = 10.0
RESOLVE_TIMEOUT_SECONDS = 5.0
LEASE_SECONDS = 60.0  # longer than one attempt can take (resolve + 10 s timeout)
CLAIM_BATCH = 16  # deliveries leased (and sent concurrently) at once per process
MAX_OUTAGE_BACKOFF_SECONDS = 10.0
MAX_ERROR_CHARS = 500


class WebhookUrlRefused(ValidationError):
    """The webhook URL is not allowed."""

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(message, details={"rule": rule})
        self.rule = rule


def new_secret() -> str:
    """A signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` and the base64 HMAC-SHA256 of
    ``{id}.{timestamp}.{body}`` keyed with the secret's decoded bytes.

    >>> sign("whsec_" + base64.b64encode(b"k" * 32).decode(), "msg_1", 1, b"{}")[:3]
    'v1,'
    """
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def event_body(attempt: WebhookAttempt) -> bytes:
    """The event as sent: the same bytes on every attempt."""
    data: dict[str, Any] = {"job": attempt.job.to_json()}
    if attempt.stage is not None:
        stages = attempt.job.stages
        name = stages[attempt.stage - 1] if 0 < attempt.stage <= len(stages) else None
        data["stage"] = {"number": attempt.stage, "name": name}
    event = {"type": attempt.event_type, "timestamp": _iso(attempt.event_created_at), "data": data}
    return json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


# -- which targets are allowed ---------------------------------------------------------


def parse_url(url: object, *, allow_private: bool) -> httpx.URL:
    """The URL if its form is allowed (https, a host, no credentials); else refused."""
    if not isinstance(url, str) or not url.strip():
        raise WebhookUrlRefused("url must be a non-empty string", rule="url")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlRefused(f"url must be at most {MAX_URL_LENGTH} characters", rule="url")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise WebhookUrlRefused(f"url {shown(url)} is not a valid URL", rule="url") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes:
        raise WebhookUrlRefused(
            f"url must use https, got {shown(parsed.scheme or url)}", rule="https"
        )
    if not parsed.host:
        raise WebhookUrlRefused(f"url {shown(url)} has no host", rule="url")
    if parsed.userinfo:
        raise WebhookUrlRefused("url must not contain a user name or password", rule="url")
    return parsed


def address_problem(address: str) -> str | None:
    """Why a webhook may not be sent to ``address`` (None: it is a public address).

    >>> address_problem("10.0.0.1"), address_problem("::ffff:127.0.0.1"), address_problem("1.1.1.1")
    ('a private address', 'a loopback address', None)
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for flag, what in (
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_unspecified", "an unspecified"),
        ("is_private", "a private"),
        ("is_reserved", "a reserved"),
    ):
        if getattr(ip, flag):
            return f"{what} address"
    return None if ip.is_global else "not a public address"


async def resolve_public(url: httpx.URL) -> list[str]:
    """The addresses ``url``'s host resolves to now, if every one is public; else refused
    (a host that does not resolve included)."""
    host = url.host
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(
                    host, url.port or 443, type=socket.SOCK_STREAM
                ),
                RESOLVE_TIMEOUT_SECONDS,
            )
        except (OSError, TimeoutError, UnicodeError):
            raise WebhookUrlRefused(
                f"the url's host {shown(host)} does not resolve", rule="resolvable"
            ) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            raise WebhookUrlRefused(
                f"the url's host {shown(host)} resolves to {address}, {problem}; webhooks go "
                "to public addresses only (CHUNKMATCH_WEBHOOK_ALLOW_PRIVATE=true lifts this)",
                rule="public_address",
            )
    return addresses


async def check_url(url: object, *, allow_private: bool) -> str:
    """A webhook URL as registered, if allowed: the same rules as at each delivery."""
    parsed = parse_url(url, allow_private=allow_private)
    if not allow_private:
        await resolve_public(parsed)
    return str(url)


async def _request(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    allow_private: bool,
) -> httpx.Request:
    """The attempt's request. Unless private targets are allowed, the host is resolved now
    and the request goes to an address just checked (the Host header and TLS name stay the
    host's), so a DNS answer that changes after the check cannot redirect it."""
    parsed = parse_url(url, allow_private=allow_private)
    extensions: dict[str, Any] = {}
    if not allow_private:
        address = (await resolve_public(parsed))[0]
        headers = {**headers, "Host": parsed.netloc.decode("ascii")}
        extensions["sni_hostname"] = parsed.host
        parsed = parsed.copy_with(host=address)
    return client.build_request(
        "POST", parsed, headers=headers, content=body, extensions=extensions
    )


# -- the dispatcher --------------------------------------------------------------------


class WebhookDispatcher:
    """Delivers due webhook deliveries from the outbox, in every process running a worker."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wakeup = asyncio.Event()
        self.delivered = 0

    def wake(self, _job_id: str = "") -> None:
        self._wakeup.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until ``stopping`` is set (a batch under way is finished first)."""
        outage_delay = 0.5
        async with httpx.AsyncClient(
            timeout=DELIVERY_TIMEOUT_SECONDS,
            follow_redirects=False,
            headers={"User-Agent": "chunkmatch-webhooks"},
        ) as client:
            while not stopping.is_set():
                self._wakeup.clear()
                try:
                    attempts = await self.store.claim_webhook_deliveries(
                        owner=self.owner, limit=CLAIM_BATCH, lease_seconds=LEASE_SECONDS
                    )
                    if attempts:
                        await asyncio.gather(*(self._deliver(client, a) for a in attempts))
                        outage_delay = 0.5
                        continue
                    wait = await self._idle_seconds()
                    outage_delay = 0.5
                except DatabaseUnavailable:
                    logger.warning("database unavailable; webhooks retry in %.1fs", outage_delay)
                    wait = outage_delay
                    outage_delay = min(outage_delay * 2, MAX_OUTAGE_BACKOFF_SECONDS)
                except Exception:
                    logger.exception("webhook dispatcher: unexpected error")
                    wait = 1.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=wait)

    async def _idle_seconds(self) -> float:
        """Poll interval, shortened when a retry is due sooner."""
        wait = self.settings.worker_poll_seconds
        due = await self.store.next_webhook_attempt_at()
        if due is not None:
            wait = min(wait, max(0.02, (due - datetime.now(UTC)).total_seconds()))
        return wait

    async def _deliver(self, client: httpx.AsyncClient, attempt: WebhookAttempt) -> None:
        body = event_body(attempt)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": attempt.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(attempt.secret, attempt.event_id, timestamp, body),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            request = await _request(
                client,
                attempt.url,
                headers,
                body,
                allow_private=self.settings.webhook_allow_private,
            )
            response = await client.send(request, stream=True)
            await response.aclose()  # the answer's body is not wanted
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}" + (
                    " (redirects are not followed)" if 300 <= status_code < 400 else ""
                )
        except WebhookUrlRefused as exc:
            error = f"refused: {exc.message}"
        except httpx.TimeoutException:
            error = f"no answer within {DELIVERY_TIMEOUT_SECONDS:.0f} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if error is None:
            await self.store.webhook_delivered(
                attempt.delivery_id, owner=self.owner, status_code=status_code or 0
            )
            self.delivered += 1
            metrics.webhook_delivery("delivered")
            return
        delay = retry_delay(
            attempt.attempt,
            base=self.settings.webhook_retry_base_seconds,
            cap=self.settings.webhook_retry_max_seconds,
        )
        status = await self.store.webhook_attempt_failed(
            attempt.delivery_id,
            owner=self.owner,
            status_code=status_code,
            error=error[:MAX_ERROR_CHARS],
            retry_in_seconds=delay,
            give_up_after_seconds=self.settings.webhook_retry_hours * 3600,
        )
        metrics.webhook_delivery("failed" if status == "failed" else "retrying")
        logger.info(
            "webhook delivery %d (%s of job %s), attempt %d: %s; %s",
            attempt.delivery_id,
            attempt.event_type,
            attempt.job.id,
            attempt.attempt,
            error,
            "given up" if status == "failed" else f"next attempt in {delay:.1f}s",
        )
