"""Job types, the stages they run, and how a job's config is validated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matching import DEFAULT_THRESHOLD
from service.exceptions import ValidationError, shown
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
CONFIG_KEYS = {"itemFields", "catalogFields", "threshold", "chunkSize", "jobType", "oneToOne"}


def stage_chunk_size(config: Mapping[str, Any], stage: str) -> int:
    """The chunk size of ``stage`` in a resolved job config."""
    return int(config["chunkSizes"][stage])


def _chunk_sizes(raw: Any, stages: Sequence[str]) -> dict[str, int]:
    """``chunkSize``: one integer for every stage, or ``{stage: n}`` (others: defaults)."""
    sizes = {stage: DEFAULT_CHUNK_SIZES[stage] for stage in stages}
    if raw is None:
        return sizes
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - set(stages))
        if unknown:
            raise ValidationError(
                f"config.chunkSize names stage(s) {unknown} this job does not run; "
                f"its stages are {list(stages)}"
            )
        given = raw
    else:
        given = dict.fromkeys(stages, raw)
    for stage, size in given.items():
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_CHUNK_SIZE:
            raise ValidationError(
                f"config.chunkSize must be an integer from 1 to {MAX_CHUNK_SIZE} "
                "(or an object of them per stage)"
            )
        sizes[stage] = size
    return sizes


def default_fields(columns: Sequence[str]) -> list[str]:
    """The columns matched when a job names none: ``name``, else ``title`` (else none)."""
    for default in ("name", "title"):
        if default in columns:
            return [default]
    return []


def _fields(raw: Any, name: str, columns: Sequence[str], side: str) -> list[str]:
    if raw is None:
        if default_fields(columns):
            return default_fields(columns)
        raise ValidationError(
            f"config.{name} is required: the {side} have no 'name' or 'title' column "
            f"(their columns are {shown(list(columns))})",
        )
    if not isinstance(raw, list) or not raw or not all(isinstance(f, str) and f for f in raw):
        raise ValidationError(f"config.{name} must be a non-empty list of column names")
    if len(set(raw)) != len(raw):
        raise ValidationError(f"config.{name} names a column twice")
    missing = [f for f in raw if f not in columns]
    if missing:
        raise ValidationError(
            f"config.{name}: no column {shown(missing)} in the {side} "
            f"(their columns are {shown(list(columns))})"
        )
    return list(raw)


def _one_to_one(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValidationError("config.oneToOne must be true or false")
    return raw


def resolve_job(
    job_type: Any,
    raw_config: Any,
    project: Project,
    *,
    missing_settings: Mapping[str, Sequence[str]] | None = None,
) -> tuple[tuple[str, ...], dict]:
    """Check a job request against the project; return its stages and complete config.

    ``missing_settings`` names, per stage, the settings this server lacks to run it.
    """
    if not isinstance(job_type, str) or job_type not in JOB_TYPES:
        raise ValidationError(
            f"unknown jobType {shown(job_type)}; expected one of {sorted(JOB_TYPES)}"
        )
    stages = JOB_TYPES[job_type]
    missing = {s: list((missing_settings or {}).get(s, ())) for s in stages}
    missing = {s: names for s, names in missing.items() if names}
    if missing:
        names = sorted({n for ns in missing.values() for n in ns})
        raise ValidationError(
            f"job type {shown(job_type)} needs the "
            f"{', '.join(STAGE_NAMES[s] for s in missing)} stage, which this server is not "
            f"configured for: set {', '.join(names)}",
            details={"unavailableStages": sorted(missing), "missingSettings": names},
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
    chunk_sizes = _chunk_sizes(config.get("chunkSize"), stages)
    resolved = {
        "itemFields": _fields(
            config.get("itemFields"), "itemFields", project.item_columns, "items"
        ),
        "catalogFields": _fields(
            config.get("catalogFields"), "catalogFields", project.catalog_columns, "catalog"
        ),
        "threshold": float(threshold),
        "chunkSize": chunk_sizes[stages[0]],
        "chunkSizes": chunk_sizes,
        "oneToOne": _one_to_one(config.get("oneToOne", False)),
    }
    return stages, resolved
