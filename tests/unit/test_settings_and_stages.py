from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from service.exceptions import ConfigurationError, ValidationError
from service.models import Project
from service.settings import Settings
from service.stages import resolve_job


def test_settings_defaults_and_casts() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.lease_seconds, s.database_url) == ("127.0.0.1", 8000, 30.0, None)
    s = Settings.from_env(
        {"PORT": "9000", "JOB_LEASE_SECONDS": "10", "DATABASE_URL": "postgres://x"}
    )
    assert (s.port, s.lease_seconds, s.database_url) == (9000, 10.0, "postgres://x")


def test_matching_helpers_default_to_one_per_further_core() -> None:
    s = Settings.from_env({})
    assert s.match_processes == max(0, min(os.cpu_count() or 1, 4) - 1)
    assert s.match_process_max_records == 300_000
    s = Settings.from_env(
        {"CHUNKMATCH_MATCH_PROCESSES": "0", "CHUNKMATCH_MATCH_PROCESS_MAX_RECORDS": "5000"}
    )
    assert (s.match_processes, s.match_process_max_records) == (0, 5000)


@pytest.mark.parametrize(
    "env",
    [
        {"PORT": "eighty"},
        {"JOB_LEASE_SECONDS": "0"},
        {"PORT": "-1"},
        {"CHUNKMATCH_MATCH_PROCESSES": "-1"},
        {"CHUNKMATCH_MATCH_PROCESSES": "two"},
    ],
)
def test_malformed_settings_say_which(env: dict) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(env))):
        Settings.from_env(env)


def _project(items=("id", "title"), catalog=("id", "name", "brand")) -> Project:
    return Project("p", "p", "owner", datetime.now(UTC), tuple(catalog), tuple(items))


def test_resolve_job_defaults_fields_to_name_else_title() -> None:
    stages, config = resolve_job("enhanced", None, _project())
    assert stages == ("enhanced",)
    assert config["itemFields"] == ["title"] and config["catalogFields"] == ["name"]
    assert 0 < config["threshold"] < 1 and config["chunkSize"] > 100


def test_resolve_job_rejects_unavailable_stages_by_name() -> None:
    missing = {"ai": ["OPENAI_API_KEY"], "web-search": ["CHUNKMATCH_SEARCH_URL"]}
    with pytest.raises(ValidationError, match="AI Matching.*OPENAI_API_KEY") as info:
        resolve_job("full", None, _project(), missing_settings=missing)
    assert info.value.details["missingSettings"] == ["CHUNKMATCH_SEARCH_URL", "OPENAI_API_KEY"]
    stages, config = resolve_job("full", {"chunkSize": {"ai": 7}}, _project())
    assert stages == ("enhanced", "ai", "web-search")
    assert config["chunkSizes"] == {"enhanced": 2000, "ai": 7, "web-search": 5}


def test_a_short_cron_secret_is_refused_and_secrets_stay_out_of_repr() -> None:
    with pytest.raises(ConfigurationError, match="CRON_SECRET must be at least 32"):
        Settings.from_env({"CRON_SECRET": "too-short"})
    s = Settings.from_env({"CRON_SECRET": "x" * 40, "OPENAI_API_KEY": "sk-very-secret"})
    assert s.cron_secret == "x" * 40
    assert "sk-very-secret" not in repr(s) and "x" * 40 not in repr(s)
