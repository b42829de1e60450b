"""Job types, the stages they run, and how a job's config is validated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matching import DEFAULT_THRESHOLD
from service.exceptions import ValidationError
from service.models import Project

JOB_TYPES: dict[str, tuple[str, ...]] = {
    "enhanced": ("enhanced",),
    "ai": ("ai",),
    "web-search": ("web-search",),
    "full": ("enhanced", "ai", "web-search"),
}
STAGE_NAMES = {"enhanced": "Enhanced Matching", "ai": "AI Matching", "web-search": "Web Search"}
DEFAULT_CHUNK_SIZES = {"enhanced": 2000, "ai": 10, "web-search": 5}
MAX_CHUNK_SIZE = 20000
# Stages that exist today; the others are accepted by the API and refused with a reason.
AVAILABLE_STAGES = frozenset({"enhanced"})

CONFIG_KEYS = {"itemFields", "catalogFields", "threshold", "chunkSize", "jobType"}


def _fields(raw: Any, name: str, columns: Sequence[str], side: str) -> list[str]:
    if raw is None:
        for default in ("name", "title"):
            if default in columns:
                return [default]
        raise ValidationError(
            f"config.{name} is required: the {side} have no 'name' or 'title' column "
            f"(their columns are {list(columns)})",
        )
    if not isinstance(raw, list) or not raw or not all(isinstance(f, str) and f for f in raw):
        raise ValidationError(f"config.{name} must be a non-empty list of column names")
    if len(set(raw)) != len(raw):
        raise ValidationError(f"config.{name} names a column twice")
    missing = [f for f in raw if f not in columns]
    if missing:
        raise ValidationError(
            f"config.{name}: no column {missing} in the {side} (their columns are {list(columns)})"
        )
    return list(raw)


def resolve_job(job_type: Any, raw_config: Any, project: Project) -> tuple[tuple[str, ...], dict]:
    """Check a job request against the project; return its stages and complete config."""
    if not isinstance(job_type, str) or job_type not in JOB_TYPES:
        raise ValidationError(f"unknown jobType {job_type!r}; expected one of {sorted(JOB_TYPES)}")
    stages = JOB_TYPES[job_type]
    missing = [s for s in stages if s not in AVAILABLE_STAGES]
    if missing:
        raise ValidationError(
            f"job type {job_type!r} needs the {', '.join(STAGE_NAMES[s] for s in missing)} "
            "stage, which this server does not provide yet; use jobType 'enhanced'",
            details={"unavailableStages": missing},
        )
    config: Mapping[str, Any] = {} if raw_config is None else raw_config
    if not isinstance(config, dict):
        raise ValidationError("config must be an object")
    extra = sorted(set(config) - CONFIG_KEYS)
    if extra:
        raise ValidationError(f"unknown config field(s) {extra}; allowed: {sorted(CONFIG_KEYS)}")
    if "jobType" in config and config["jobType"] != job_type:
        raise ValidationError("config.jobType, when given, must equal jobType")
    if not project.item_columns:
        raise ValidationError("the project has no items yet: upload items first")
    if not project.catalog_columns:
        raise ValidationError("the project has no catalog yet: upload the catalog first")
    threshold = config.get("threshold", DEFAULT_THRESHOLD)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not (0.0 <= threshold <= 1.0)
    ):
        raise ValidationError("config.threshold must be a number between 0 and 1")
    chunk_size = config.get("chunkSize", DEFAULT_CHUNK_SIZES[stages[0]])
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or not (1 <= chunk_size <= MAX_CHUNK_SIZE)
    ):
        raise ValidationError(f"config.chunkSize must be an integer from 1 to {MAX_CHUNK_SIZE}")
    resolved = {
        "itemFields": _fields(
            config.get("itemFields"), "itemFields", project.item_columns, "items"
        ),
        "catalogFields": _fields(
            config.get("catalogFields"), "catalogFields", project.catalog_columns, "catalog"
        ),
        "threshold": float(threshold),
        "chunkSize": chunk_size,
    }
    return stages, resolved
