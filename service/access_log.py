"""Keep secrets out of the access log: an event-stream ticket travels in the query string
(``?ticket=``, for browsers' EventSource), and uvicorn logs every request's full path."""

from __future__ import annotations

import logging
import re

_TICKET = re.compile(r"(?i)((?:^|[?&])ticket=)[^&\s]*")


def redact(text: str) -> str:
    """``text`` with every ``ticket=`` value hidden.

    >>> redact("/api/jobs/1/events?ticket=cm_secret&x=1")
    '/api/jobs/1/events?ticket=REDACTED&x=1'
    """
    return _TICKET.sub(r"\1REDACTED", text)


class RedactTickets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str) and "ticket=" in record.msg.lower():
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Redact the access log (idempotent; after uvicorn has configured its loggers)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTickets) for f in access.filters):
        access.addFilter(RedactTickets())
