"""The access log and the HTTP request metrics: one line per answered request, with its
route template, status and duration; and the redaction that keeps secrets out of every log
line (query strings included: an event-stream ticket travels as ``?ticket=``, and a client
may well send ``?token=``).

uvicorn's own access log is turned off where chunkmatch starts uvicorn: it names neither
the route nor the duration, and logs at the start of an answer.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics

logger = logging.getLogger("chunkmatch.access")

# a parameter (of a query string, a form, free text): name=value; its value is hidden when
# the name says it holds a secret (?token=…, &x_api_key=…, ?client_secret=…)
_PARAM = re.compile(r"(^|[?&;\s\"'(])([\w.\-]+)=([^&\s\"'#;]*)")
_SECRET_NAME = re.compile(r"(?i)token|ticket|secret|passw|pwd|key|auth|sig|credential|session|code")
# an Authorization value, wherever it is written: "Authorization: Bearer …", "Bearer …"
_AUTH_HEADER = re.compile(
    r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|token)\s+)?[^\s\"',;]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?!REDACTED)[^\s\"',;<]+")
# our own secrets by their shape, even in free text: API tokens, tickets, webhook secrets
_OUR_SECRETS = re.compile(r"\b(cm_|whsec_)[A-Za-z0-9_\-+/=]{16,}")


def redact(text: str) -> str:
    """``text`` with every secret-looking value hidden.

    >>> redact("/api/jobs/1/events?ticket=cm_secret&x=1")
    '/api/jobs/1/events?ticket=REDACTED&x=1'
    >>> redact("GET /metrics?token=abc&limit=5&api_key=k")
    'GET /metrics?token=REDACTED&limit=5&api_key=REDACTED'
    >>> redact("sent Authorization: Bearer my-cron-secret, then bearer cm_0123456789abcdefghij")
    'sent Authorization: REDACTED, then bearer REDACTED'
    >>> redact("token cm_0123456789abcdefghijkl and whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    'token cm_REDACTED and whsec_REDACTED'
    """
    if not text:
        return text
    # each pattern only where it can match: most lines have none (a few µs, not 100)
    if "=" in text:
        text = _PARAM.sub(_hide_secret_value, text)
    folded = text.lower()
    if "auth" in folded or "bearer" in folded:
        text = _AUTH_HEADER.sub(r"\1REDACTED", text)
        text = _BEARER.sub(r"\1REDACTED", text)
    if "cm_" in text or "whsec_" in text:
        text = _OUR_SECRETS.sub(r"\1REDACTED", text)
    return text


def _hide_secret_value(param: re.Match[str]) -> str:
    start, name, value = param.groups()
    if not value or not _SECRET_NAME.search(name):
        return param.group(0)
    return f"{start}{name}=REDACTED"


class RedactSecrets(logging.Filter):
    """Redacts a record's message (its arguments merged in) before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        return True


def install() -> None:
    """Redact uvicorn's access log, should anything turn it on (idempotent)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())


def route_template(routes: list[BaseRoute], scope: Scope) -> str:
    """The template of the route that serves ``scope`` (``/api/jobs/{job_id}``), a mount's
    path (``/static``), or :data:`metrics.UNMATCHED_ROUTE`: a label never holds an id."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", None) or metrics.UNMATCHED_ROUTE
        if match is Match.PARTIAL and partial is None:  # the path, another method: a 405
            partial = getattr(route, "path", None)
    return partial or metrics.UNMATCHED_ROUTE


class AccessLog:
    """Outermost middleware: times each HTTP request to the end of its answer, observes
    ``chunkmatch_http_request_duration_seconds`` and writes the access log line."""

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # the answer if the app raises before it starts one
        recorded = False

        def record() -> None:
            nonlocal recorded
            recorded = True
            seconds = time.perf_counter() - started
            # the router notes the route it chose; a request refused before routing (no
            # token, 429) is matched here (its scope is as it came in)
            chosen = scope.get("route")
            if chosen is not None:
                route = getattr(chosen, "path", None) or metrics.UNMATCHED_ROUTE
            else:
                route = route_template(self.routes, scope)
            metrics.http_request(route, scope["method"], status, seconds)
            if logger.isEnabledFor(logging.INFO):
                self._log(scope, route, status, seconds)

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            # the answer ends with its last body part; a background task (an upload's index
            # build) may run long after, and is not the request's time
            if message["type"] == "http.response.body" and not message.get("more_body"):
                record()

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not recorded:  # no complete answer: the app failed, or the client went away
                record()

    @staticmethod
    def _log(scope: Scope, route: str, status: int, seconds: float) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        path = redact(scope.get("path", "") + (f"?{query}" if query else ""))
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        duration_ms = round(1000 * seconds, 1)
        logger.info(
            '%s - "%s %s HTTP/%s" %d %.1f ms (%s)',
            where,
            scope["method"],
            path,
            scope.get("http_version", "1.1"),
            status,
            duration_ms,
            route,
            extra={
                "client": where,
                "method": scope["method"],
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
            },
        )
