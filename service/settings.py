"""Settings, read once from the environment.

Nothing else in chunkmatch reads ``os.environ``: every knob has a name, a cast, a default
with its unit, and a clear message when it is malformed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from service.exceptions import ConfigurationError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
ROOT_DATA_DIR = Path("/var/lib/chunkmatch")
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_POOL_MAX_SIZE = 10
DEFAULT_INDEX_CACHE_SIZE = 4
DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024
DEFAULT_DB_RETRY_AFTER_SECONDS = 5
DEFAULT_JOB_MAX_ATTEMPTS = 3
DEFAULT_RETRY_BASE_SECONDS = 2.0
DEFAULT_RETRY_MAX_SECONDS = 300.0
DEFAULT_WORKER_CONCURRENCY = 2
DEFAULT_WORKER_POLL_SECONDS = 5.0
DEFAULT_WORKER_GRACE_SECONDS = 20.0
MIN_SECRET_LENGTH = 32  # of CRON_SECRET and CHUNKMATCH_METRICS_TOKEN
LOG_FORMATS = ("text", "json")
DEFAULT_CHUNK_TIME_BUDGET_SECONDS = 25.0
DEFAULT_LLM_BATCH_SIZE = 5
DEFAULT_LLM_CONCURRENCY = 4
DEFAULT_LLM_MAX_ATTEMPTS = 4
DEFAULT_LLM_MIN_CONFIDENCE = 0.5
DEFAULT_SEARCH_CONCURRENCY = 3
DEFAULT_BODY_TIMEOUT_SECONDS = 30.0
DEFAULT_SHUTDOWN_SECONDS = 20.0
DEFAULT_RATE_PER_SECOND = 50.0  # requests per second per token (sustained), per process
DEFAULT_RATE_BURST = 200  # requests a token may send at once before the rate applies
DEFAULT_MAX_PROJECTS_PER_OWNER = 1000
DEFAULT_MAX_RECORDS_PER_PROJECT = 5_000_000  # catalog records, and items, each
DEFAULT_SSE_KEEPALIVE_SECONDS = 15.0  # a comment line this often keeps proxies open
DEFAULT_TOKEN_CACHE_SECONDS = 10.0  # a token's owner is remembered this long per process
DEFAULT_WEBHOOK_RETRY_BASE_SECONDS = 5.0  # first wait after a failed delivery, then doubled
DEFAULT_WEBHOOK_RETRY_MAX_SECONDS = 3600.0  # longest wait between two attempts
DEFAULT_WEBHOOK_RETRY_HOURS = 24.0  # a delivery is attempted for this long, then given up
# helper processes that match a share of each chunk: one per further core, at most three
DEFAULT_MATCH_PROCESSES = max(0, min(os.cpu_count() or 1, 4) - 1)
# larger catalogs (and jobs of more items) are matched by the server alone: a helper's copy
# of the index would double their memory
DEFAULT_MATCH_PROCESS_MAX_RECORDS = 300_000


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def default_data_dir(env: Mapping[str, str], *, is_root: bool) -> Path:
    """Where the service keeps its data when ``CHUNKMATCH_DATA_DIR`` is not set: one place
    per user, the same for ``serve``, ``run`` and ``token``, whatever the current folder.

    ``$XDG_DATA_HOME/chunkmatch`` when XDG_DATA_HOME is set (and, for root, outside /root),
    else ``~/.local/share/chunkmatch``; root's home is under /root, which embedded
    PostgreSQL must not use (it loosens the permissions of every parent folder), so root's
    default is /var/lib/chunkmatch.
    """
    xdg = env.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():
        path = Path(xdg) / "chunkmatch"
        if not (is_root and path.is_relative_to("/root")):
            return path
    if is_root:
        return ROOT_DATA_DIR
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".local" / "share" / "chunkmatch"


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise ConfigurationError(f"{name} must be 'on' or 'off', got {raw!r}")


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A bearer secret an operator chose (``CRON_SECRET``, ``CHUNKMATCH_METRICS_TOKEN``):
    unset, or long enough not to be guessed."""
    raw = env.get(name)
    if not raw:
        return None
    if len(raw) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"{name} must be at least {MIN_SECRET_LENGTH} characters "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
    return raw


def _log_format(raw: str | None) -> str:
    value = (raw or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigurationError(f"CHUNKMATCH_LOG_FORMAT must be 'text' or 'json', got {raw!r}")
    return value


def _optional_port(env: Mapping[str, str], name: str) -> int | None:
    if not env.get(name):
        return None
    port = _int(env, name, 0, minimum=0)
    if port > 65535:
        raise ConfigurationError(f"{name} must be a port number (0-65535), got {port}")
    return port


@dataclass(frozen=True)
class Settings:
    """Everything chunkmatch can be configured with (see the README's table)."""

    database_url: str | None
    data_dir: Path
    host: str
    port: int
    lease_seconds: float
    pool_max_size: int
    index_cache_size: int
    max_body_bytes: int
    db_retry_after_seconds: int
    log_level: str
    cron_secret: str | None
    job_max_attempts: int
    retry_base_seconds: float
    retry_max_seconds: float
    retention_days: int | None
    worker_concurrency: int
    worker_poll_seconds: float
    worker_grace_seconds: float
    cors_origins: tuple[str, ...]
    client_token: str | None
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    llm_model: str | None = None
    llm_batch_size: int = DEFAULT_LLM_BATCH_SIZE
    llm_concurrency: int = DEFAULT_LLM_CONCURRENCY
    llm_max_attempts: int = DEFAULT_LLM_MAX_ATTEMPTS
    llm_min_confidence: float = DEFAULT_LLM_MIN_CONFIDENCE
    llm_price_in_per_million: float = 0.0
    llm_price_out_per_million: float = 0.0
    llm_requests_per_minute: int = 0
    llm_tokens_per_minute: int = 0
    search_url: str | None = None
    search_concurrency: int = DEFAULT_SEARCH_CONCURRENCY
    chunk_time_budget_seconds: float = DEFAULT_CHUNK_TIME_BUDGET_SECONDS
    provider_outage_wait_seconds: float = 30.0
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS
    rate_per_second: float = DEFAULT_RATE_PER_SECOND
    rate_burst: int = DEFAULT_RATE_BURST
    max_projects_per_owner: int = DEFAULT_MAX_PROJECTS_PER_OWNER
    max_records_per_project: int = DEFAULT_MAX_RECORDS_PER_PROJECT
    serve_worker: bool = True  # `chunkmatch serve` runs the worker's slots in-process
    sse_keepalive_seconds: float = DEFAULT_SSE_KEEPALIVE_SECONDS
    token_cache_seconds: float = DEFAULT_TOKEN_CACHE_SECONDS
    # webhooks to http:// and to loopback / private / link-local / multicast addresses
    webhook_allow_private: bool = False
    webhook_retry_base_seconds: float = DEFAULT_WEBHOOK_RETRY_BASE_SECONDS
    webhook_retry_max_seconds: float = DEFAULT_WEBHOOK_RETRY_MAX_SECONDS
    webhook_retry_hours: float = DEFAULT_WEBHOOK_RETRY_HOURS
    log_format: str = "text"  # "text" (readable) or "json" (one object per line)
    metrics_token: str | None = None  # a bearer secret for GET /metrics besides admin tokens
    worker_metrics_port: int | None = None  # `chunkmatch worker` serves /metrics there
    match_processes: int = DEFAULT_MATCH_PROCESSES
    match_process_max_records: int = DEFAULT_MATCH_PROCESS_MAX_RECORDS

    def __repr__(self) -> str:  # never print secrets
        return f"Settings(database_url={'set' if self.database_url else None}, ...)"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(
                env.get("CHUNKMATCH_DATA_DIR") or default_data_dir(env, is_root=_is_root())
            ),
            host=env.get("HOST") or DEFAULT_HOST,
            port=_int(env, "PORT", DEFAULT_PORT, minimum=0),
            lease_seconds=_float(env, "JOB_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, minimum=1.0),
            pool_max_size=_int(env, "CHUNKMATCH_POOL_MAX_SIZE", DEFAULT_POOL_MAX_SIZE, minimum=2),
            index_cache_size=_int(
                env, "CHUNKMATCH_INDEX_CACHE_SIZE", DEFAULT_INDEX_CACHE_SIZE, minimum=1
            ),
            max_body_bytes=_int(
                env, "CHUNKMATCH_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024
            ),
            db_retry_after_seconds=_int(
                env, "CHUNKMATCH_DB_RETRY_AFTER", DEFAULT_DB_RETRY_AFTER_SECONDS, minimum=1
            ),
            log_level=(env.get("CHUNKMATCH_LOG_LEVEL") or "INFO").upper(),
            cron_secret=_secret(env, "CRON_SECRET"),
            job_max_attempts=_int(env, "JOB_MAX_ATTEMPTS", DEFAULT_JOB_MAX_ATTEMPTS, minimum=1),
            retry_base_seconds=_float(
                env, "JOB_RETRY_BASE_SECONDS", DEFAULT_RETRY_BASE_SECONDS, minimum=0.0
            ),
            retry_max_seconds=_float(
                env, "JOB_RETRY_MAX_SECONDS", DEFAULT_RETRY_MAX_SECONDS, minimum=0.0
            ),
            retention_days=_int(env, "JOB_RETENTION_DAYS", 0, minimum=0) or None,
            worker_concurrency=_int(
                env, "WORKER_CONCURRENCY", DEFAULT_WORKER_CONCURRENCY, minimum=1
            ),
            worker_poll_seconds=_float(
                env, "WORKER_POLL_SECONDS", DEFAULT_WORKER_POLL_SECONDS, minimum=0.05
            ),
            worker_grace_seconds=_float(
                env, "WORKER_GRACE_SECONDS", DEFAULT_WORKER_GRACE_SECONDS, minimum=0.0
            ),
            cors_origins=tuple(
                o.strip() for o in (env.get("CORS_ORIGINS") or "").split(",") if o.strip()
            ),
            client_token=env.get("CHUNKMATCH_TOKEN") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            llm_model=env.get("CHUNKMATCH_LLM_MODEL") or None,
            llm_batch_size=_int(
                env, "CHUNKMATCH_LLM_BATCH_SIZE", DEFAULT_LLM_BATCH_SIZE, minimum=1
            ),
            llm_concurrency=_int(
                env, "CHUNKMATCH_LLM_CONCURRENCY", DEFAULT_LLM_CONCURRENCY, minimum=1
            ),
            llm_max_attempts=_int(
                env, "CHUNKMATCH_LLM_MAX_ATTEMPTS", DEFAULT_LLM_MAX_ATTEMPTS, minimum=1
            ),
            llm_min_confidence=_float(
                env, "CHUNKMATCH_LLM_MIN_CONFIDENCE", DEFAULT_LLM_MIN_CONFIDENCE, minimum=0.0
            ),
            llm_price_in_per_million=_float(env, "CHUNKMATCH_LLM_PRICE_IN", 0.0),
            llm_price_out_per_million=_float(env, "CHUNKMATCH_LLM_PRICE_OUT", 0.0),
            llm_requests_per_minute=_int(env, "CHUNKMATCH_LLM_RPM", 0, minimum=0),
            llm_tokens_per_minute=_int(env, "CHUNKMATCH_LLM_TPM", 0, minimum=0),
            search_url=env.get("CHUNKMATCH_SEARCH_URL") or None,
            search_concurrency=_int(
                env, "CHUNKMATCH_SEARCH_CONCURRENCY", DEFAULT_SEARCH_CONCURRENCY, minimum=1
            ),
            chunk_time_budget_seconds=_float(
                env, "CHUNK_TIME_BUDGET_SECONDS", DEFAULT_CHUNK_TIME_BUDGET_SECONDS, minimum=1.0
            ),
            provider_outage_wait_seconds=_float(
                env, "CHUNKMATCH_PROVIDER_OUTAGE_WAIT", 30.0, minimum=0.1
            ),
            body_timeout_seconds=_float(
                env, "CHUNKMATCH_BODY_TIMEOUT_SECONDS", DEFAULT_BODY_TIMEOUT_SECONDS, minimum=0.1
            ),
            shutdown_seconds=_float(
                env, "CHUNKMATCH_SHUTDOWN_SECONDS", DEFAULT_SHUTDOWN_SECONDS, minimum=0.0
            ),
            rate_per_second=_float(env, "CHUNKMATCH_RATE_LIMIT", DEFAULT_RATE_PER_SECOND),
            rate_burst=_int(env, "CHUNKMATCH_RATE_BURST", DEFAULT_RATE_BURST, minimum=1),
            max_projects_per_owner=_int(
                env, "CHUNKMATCH_MAX_PROJECTS_PER_OWNER", DEFAULT_MAX_PROJECTS_PER_OWNER
            ),
            max_records_per_project=_int(
                env, "CHUNKMATCH_MAX_RECORDS_PER_PROJECT", DEFAULT_MAX_RECORDS_PER_PROJECT
            ),
            serve_worker=_switch(env, "CHUNKMATCH_SERVE_WORKER", True),
            sse_keepalive_seconds=_float(
                env,
                "CHUNKMATCH_SSE_KEEPALIVE_SECONDS",
                DEFAULT_SSE_KEEPALIVE_SECONDS,
                minimum=0.05,
            ),
            token_cache_seconds=_float(
                env, "CHUNKMATCH_TOKEN_CACHE_SECONDS", DEFAULT_TOKEN_CACHE_SECONDS, minimum=0.0
            ),
            webhook_allow_private=_switch(env, "CHUNKMATCH_WEBHOOK_ALLOW_PRIVATE", False),
            webhook_retry_base_seconds=_float(
                env,
                "CHUNKMATCH_WEBHOOK_RETRY_BASE_SECONDS",
                DEFAULT_WEBHOOK_RETRY_BASE_SECONDS,
                minimum=0.01,
            ),
            webhook_retry_max_seconds=_float(
                env,
                "CHUNKMATCH_WEBHOOK_RETRY_MAX_SECONDS",
                DEFAULT_WEBHOOK_RETRY_MAX_SECONDS,
                minimum=0.01,
            ),
            webhook_retry_hours=_float(
                env, "CHUNKMATCH_WEBHOOK_RETRY_HOURS", DEFAULT_WEBHOOK_RETRY_HOURS, minimum=24.0
            ),
            log_format=_log_format(env.get("CHUNKMATCH_LOG_FORMAT")),
            metrics_token=_secret(env, "CHUNKMATCH_METRICS_TOKEN"),
            worker_metrics_port=_optional_port(env, "CHUNKMATCH_WORKER_METRICS_PORT"),
            match_processes=_int(
                env, "CHUNKMATCH_MATCH_PROCESSES", DEFAULT_MATCH_PROCESSES, minimum=0
            ),
            match_process_max_records=_int(
                env,
                "CHUNKMATCH_MATCH_PROCESS_MAX_RECORDS",
                DEFAULT_MATCH_PROCESS_MAX_RECORDS,
                minimum=0,
            ),
        )

    @property
    def embedded(self) -> bool:
        """No DATABASE_URL: the service runs its own embedded PostgreSQL."""
        return self.database_url is None

    @property
    def local_token_file(self) -> Path:
        """Where zero-configuration use keeps its local admin token."""
        return self.data_dir / "admin-token"

    @property
    def run_log_file(self) -> Path:
        """Where ``chunkmatch run`` sends the logs of the server it starts in-process."""
        return self.data_dir / "logs" / "run.log"
