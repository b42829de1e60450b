"""How log lines look: readable text by default, or (``CHUNKMATCH_LOG_FORMAT=json``) one
JSON object per line with ``time``, ``level``, ``logger``, ``message`` and the fields a
line carries where they apply (``job_id``, ``stage``, ``chunk``, ``duration_ms``; the
access log's ``route``, ``method``, ``status``, ``path``…), passed as ``extra=``.

Both formats redact secrets (service/access_log.py) from the message, the fields and any
traceback, so no handler of ours writes a token, ticket or secret.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from service.access_log import redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# what every LogRecord has: anything else on a record came from extra= and is a field
# (but uvicorn's color_message: its message again, with terminal colours)
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                line[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(*, level: str, log_format: str) -> None:
    """The process's logging: one handler on the root logger (stderr) in ``log_format``.
    uvicorn is started with ``log_config=None``, so its records come here too."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # warnings would otherwise be printed bare, a line that is not JSON
    logging.captureWarnings(log_format == "json")
