"""Log lines: the JSON format's fields, and secrets redacted in both formats."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from service.access_log import redact
from service.exceptions import ConfigurationError
from service.log_format import JsonFormatter, TextFormatter
from service.settings import Settings

TOKEN = "cm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd"


def _record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"calling https://x.example/?token={TOKEN}")
        except RuntimeError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("chunkmatch.engine", logging.INFO, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_the_standard_keys_and_the_extra_fields() -> None:
    record = _record(
        "job %s chunk %d done", "j1", 3, job_id="j1", stage="enhanced", chunk=3, duration_ms=12.5
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "INFO" and parsed["logger"] == "chunkmatch.engine"
    assert parsed["message"] == "job j1 chunk 3 done"
    assert parsed["time"].endswith("+00:00")
    assert (parsed["job_id"], parsed["stage"], parsed["chunk"], parsed["duration_ms"]) == (
        "j1",
        "enhanced",
        3,
        12.5,
    )


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_no_secret_in_a_line_its_fields_or_its_traceback(formatter: logging.Formatter) -> None:
    record = _record(
        "GET %s with Authorization: Bearer %s\nsecond line",
        f"/api/jobs/1?ticket={TOKEN}&token={TOKEN}&limit=3",
        "my-cron-secret-value",
        exc=True,
        path=f"/metrics?api_key={TOKEN}",
    )
    line = formatter.format(record)
    assert TOKEN not in line and TOKEN[3:20] not in line
    assert "my-cron-secret-value" not in line
    assert "limit=3" in line
    if isinstance(formatter, JsonFormatter):
        parsed = json.loads(line)
        assert parsed["path"] == "/metrics?api_key=REDACTED"
        assert "RuntimeError" in parsed["exception"]


@pytest.mark.parametrize(
    "text",
    [
        f"?token={TOKEN}",
        f"&access_token={TOKEN}",
        f"?X-Api-Key={TOKEN}",
        f"?password={TOKEN}",
        f"?client_secret={TOKEN}",
        f"?signature={TOKEN}",
        f"authorization: bearer {TOKEN}",
        f'"Authorization": "Bearer {TOKEN}"',
        f"free text with {TOKEN} in it",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ],
)
def test_redact_hides_secret_looking_values(text: str) -> None:
    assert TOKEN not in redact(text) and "MfKQ9r8GKYqr" not in redact(text)


def test_redact_leaves_ordinary_parameters() -> None:
    path = "/api/jobs/1/matches?format=csv&limit=100&cursor=abc&bom=false&idField=id"
    assert redact(path) == path


def test_log_format_and_metrics_settings() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"CHUNKMATCH_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigurationError, match="CHUNKMATCH_LOG_FORMAT must be 'text' or 'json'"):
        Settings.from_env({"CHUNKMATCH_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigurationError, match="CHUNKMATCH_METRICS_TOKEN must be at least 32"):
        Settings.from_env({"CHUNKMATCH_METRICS_TOKEN": "short"})
    s = Settings.from_env({"CHUNKMATCH_METRICS_TOKEN": "m" * 40})
    assert s.metrics_token == "m" * 40 and "m" * 40 not in repr(s)
    assert Settings.from_env({}).worker_metrics_port is None
    assert Settings.from_env({"CHUNKMATCH_WORKER_METRICS_PORT": "9108"}).worker_metrics_port == 9108
    with pytest.raises(ConfigurationError, match="port number"):
        Settings.from_env({"CHUNKMATCH_WORKER_METRICS_PORT": "70000"})
