"""The small frozen records the store hands out, and their JSON shapes (camelCase)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JOB_STATUSES = ("pending", "processing", "paused", "completed", "failed", "cancelled")
ACTIVE_STATUSES = ("pending", "processing")  # may be advanced
LIVE_STATUSES = ("pending", "processing", "paused")  # at most one per (project, job type)
FINISHED_STATUSES = ("completed", "failed", "cancelled")
# what a job's preparation builds before its first chunk: the catalog index, then (for the
# enhanced stage) the peers of its items
PREPARATION_STEPS = ("catalog_index", "peers")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _json_list(value: Any) -> list[Any]:
    """A JSONB list column (decoded by the pool's codec); [] for NULL."""
    return list(value) if isinstance(value, list) else []


def _round(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None


@dataclass(frozen=True)
class ApiToken:
    id: str
    owner: str
    prefix: str
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ApiToken:
        return cls(
            id=str(row["id"]),
            owner=row["owner"],
            prefix=row["prefix"],
            is_admin=row["is_admin"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    owner: str
    created_at: datetime
    catalog_columns: tuple[str, ...]
    item_columns: tuple[str, ...]
    catalog_count: int = 0
    item_count: int = 0
    matched_items: int = 0
    # the acceptance re-fitted from its reviewers' decisions (None: the default)
    calibration: Mapping[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Project:
        return cls(
            id=str(row["id"]),
            name=row["name"],
            owner=row["owner"],
            created_at=row["created_at"],
            catalog_columns=tuple(row["catalog_columns"]),
            item_columns=tuple(row["item_columns"]),
            catalog_count=row.get("catalog_count", 0),
            item_count=row.get("item_count", 0),
            matched_items=row.get("matched_items", 0),
            calibration=row.get("calibration"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "createdAt": _iso(self.created_at),
            "catalogCount": self.catalog_count,
            "itemCount": self.item_count,
            "matchedItems": self.matched_items,
            "unmatchedItems": self.item_count - self.matched_items,
            "catalogColumns": list(self.catalog_columns),
            "itemColumns": list(self.item_columns),
        }


@dataclass(frozen=True)
class Job:
    id: str
    project_id: str
    job_type: str
    status: str
    config: Mapping[str, Any]
    stages: tuple[str, ...]
    current_stage: int
    current_stage_name: str
    chunk_size: int
    total_items: int
    claimed_items: int
    processed_items: int
    progress_percentage: float
    matches_found: int
    match_rate: float
    items_per_second: float | None
    eta_seconds: float | None
    estimated_completion: datetime | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    error: str | None
    priority: int = 5
    attempts: int = 0
    max_attempts: int = 3
    next_attempt_at: datetime | None = None
    stage_total: int = 0
    stage_processed: int = 0
    failed_items: int = 0
    # matches the ends of its matching stages withdrew beside their records' other matches
    withdrawn_matches: int = 0
    waiting_reason: str | None = None
    llm_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    search_requests: int = 0
    estimated_cost_usd: float = 0.0
    catalog_version: int = 0
    items_version: int = 0
    # {"step": "catalog_index" | "peers", "progress": 0..1} while the index the job needs
    # is being built (see Engine.start_preparation); None when ready
    preparation: Mapping[str, Any] | None = None
    version: int = 0  # per-job, increased by every change of its row (the SSE event id)
    # the project's calibration the job was created with (None: the default's)
    calibration: Mapping[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        return cls(
            id=str(row["id"]),
            project_id=str(row["project_id"]),
            job_type=row["job_type"],
            status=row["status"],
            config=row["config"],
            stages=tuple(row["stages"]),
            current_stage=row["current_stage"],
            current_stage_name=row["current_stage_name"],
            chunk_size=row["chunk_size"],
            total_items=row["total_items"],
            claimed_items=row["claimed_items"],
            processed_items=row["processed_items"],
            progress_percentage=row["progress_percentage"],
            matches_found=row["matches_found"],
            match_rate=row["match_rate"],
            items_per_second=row["items_per_second"],
            eta_seconds=row["eta_seconds"],
            estimated_completion=row["estimated_completion"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            updated_at=row["updated_at"],
            error=row["error"],
            priority=row["priority"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            next_attempt_at=row["next_attempt_at"],
            stage_total=row["stage_total"],
            stage_processed=row["stage_processed"],
            failed_items=row["failed_items"],
            withdrawn_matches=row.get("withdrawn_matches", 0),
            waiting_reason=row["waiting_reason"],
            llm_requests=row["llm_requests"],
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            cache_hits=row["cache_hits"],
            search_requests=row["search_requests"],
            estimated_cost_usd=row["estimated_cost_usd"],
            catalog_version=row["catalog_version"],
            items_version=row["items_version"],
            preparation=row["preparation"],
            version=row.get("version", 0),
            calibration=row.get("calibration"),
        )

    @property
    def is_last_stage(self) -> bool:
        return self.current_stage >= len(self.stages)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "projectId": self.project_id,
            "jobType": self.job_type,
            "status": self.status,
            "currentStage": self.current_stage,
            "currentStageName": self.current_stage_name,
            "stages": list(self.stages),
            "totalItems": self.total_items,
            "processedItems": self.processed_items,
            "progressPercentage": _round(self.progress_percentage),
            "matchesFound": self.matches_found,
            "matchRate": _round(self.match_rate),
            "chunkSize": self.chunk_size,
            "itemsPerSecond": _round(self.items_per_second, 1),
            "etaSeconds": _round(self.eta_seconds, 1),
            "estimatedCompletion": _iso(self.estimated_completion),
            "createdAt": _iso(self.created_at),
            "startedAt": _iso(self.started_at),
            "completedAt": _iso(self.completed_at),
            "updatedAt": _iso(self.updated_at),
            "error": self.error,
            "priority": self.priority,
            "attempts": self.attempts,
            "maxAttempts": self.max_attempts,
            "nextAttemptAt": _iso(self.next_attempt_at),
            "failedItems": self.failed_items,
            "withdrawnMatches": self.withdrawn_matches,
            "waitingReason": self.waiting_reason,
            "usage": {
                "llmRequests": self.llm_requests,
                "promptTokens": self.prompt_tokens,
                "completionTokens": self.completion_tokens,
                "cacheHits": self.cache_hits,
                "searchRequests": self.search_requests,
                "estimatedCostUsd": round(self.estimated_cost_usd, 6),
                "tokensPerItem": _round(
                    (self.prompt_tokens + self.completion_tokens) / self.processed_items
                    if self.processed_items
                    else 0.0,
                    1,
                ),
                "requestsPerItem": _round(
                    self.llm_requests / self.processed_items if self.processed_items else 0.0, 3
                ),
            },
            "config": dict(self.config),
            "catalogVersion": self.catalog_version,
            "itemsVersion": self.items_version,
            "preparation": None if self.preparation is None else dict(self.preparation),
            "version": self.version,
            "calibration": None if self.calibration is None else dict(self.calibration),
        }


@dataclass(frozen=True)
class ChunkClaim:
    """A range of a job's items (``ord_from < ord <= ord_to``) leased to one driver."""

    job_id: str
    seq: int
    stage: int
    ord_from: int
    ord_to: int
    owner: str

    @property
    def size(self) -> int:
        return self.ord_to - self.ord_from


@dataclass(frozen=True)
class StageUsage:
    llm_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    search_requests: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class StageOutcome:
    """What a stage made of a chunk: every item of the chunk is matched, failed, requeued, or
    (the rest) decided to have no match."""

    matches: list[tuple[str, str, float, str, str, str | None]]  # ..., explanation JSON
    failed: list[tuple[str, str]] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    usage: StageUsage = field(default_factory=StageUsage)
    wait_seconds: float | None = None
    waiting_reason: str | None = None
    # decisions worth a reviewer's look (enhanced stage): see stage_runners.ReviewRow
    review: list[tuple[str, str, float, bool, float, str, str, str | None, str]] = field(
        default_factory=list
    )


@dataclass(frozen=True)
class ClaimOutcome:
    job: Job
    chunk: ChunkClaim | None
    busy: bool = False


@dataclass(frozen=True)
class UploadResult:
    inserted: int
    updated: int

    @property
    def total(self) -> int:
        return self.inserted + self.updated

    def to_json(self) -> dict[str, Any]:
        return {
            "success": True,
            "inserted": self.inserted,
            "updated": self.updated,
            "total": self.total,
        }


@dataclass(frozen=True)
class MatchRow:
    id: int
    item_id: str
    catalog_id: str
    score: float
    method: str
    reason: str
    stage: int
    explanation: list[dict[str, Any]]
    item_text: str | None
    catalog_text: str | None
    created_at: datetime
    reviewed: bool = False  # a reviewer has decided the item (in the job's project)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MatchRow:
        return cls(
            id=row["id"],
            item_id=row["item_id"],
            catalog_id=row["catalog_id"],
            score=row["score"],
            method=row["method"],
            reason=row["reason"],
            stage=row["stage"],
            explanation=_json_list(row["explanation"]),
            item_text=row["item_text"],
            catalog_text=row["catalog_text"],
            created_at=row["created_at"],
            reviewed=row.get("reviewed", False),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "itemId": self.item_id,
            "catalogId": self.catalog_id,
            "score": round(self.score, 4),
            "method": self.method,
            "reason": self.reason,
            "explanation": self.explanation,
            "stage": self.stage,
            "itemText": self.item_text,
            "catalogText": self.catalog_text,
            "createdAt": _iso(self.created_at),
            "reviewed": self.reviewed,
        }


@dataclass(frozen=True)
class ReviewPair:
    """One pair of a job's review queue: the item, the record proposed for it (its match,
    or its best candidate when unmatched) and the item's other candidates."""

    item_id: str
    item_text: str | None
    catalog_id: str
    catalog_text: str | None
    score: float
    method: str
    reason: str
    explanation: list[dict[str, Any]]
    matched: bool
    error_chance: float
    candidates: list[tuple[str, str | None, float]]  # (id, text, score), best first

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ReviewPair:
        texts = row["texts"] or {}
        return cls(
            item_id=row["item_id"],
            item_text=row["item_text"],
            catalog_id=row["catalog_id"],
            catalog_text=texts.get(row["catalog_id"]),
            score=row["score"],
            method=row["method"],
            reason=row["reason"],
            explanation=_json_list(row["explanation"]),
            matched=row["matched"],
            error_chance=row["error_chance"],
            candidates=[
                (c, texts.get(c), float(s)) for c, s in _json_list(row["candidate_scores"])
            ],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "itemId": self.item_id,
            "itemText": self.item_text,
            "catalogId": self.catalog_id,
            "catalogText": self.catalog_text,
            "score": round(self.score, 4),
            "method": self.method,
            "reason": self.reason,
            "explanation": self.explanation,
            "matched": self.matched,
            "errorChance": round(self.error_chance, 4),
            "candidates": [
                {"catalogId": c, "catalogText": t, "score": round(s, 4)}
                for c, t, s in self.candidates
            ],
        }


@dataclass(frozen=True)
class ReviewDecision:
    """A reviewer's decision about one item: ``match`` (with ``catalog_id``) or
    ``no-match`` (about ``catalog_id``, or with None: no counterpart at all)."""

    item_id: str
    catalog_id: str | None
    decision: str


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk of a job as ``GET /api/jobs/{id}/chunks`` shows it: when it ran, what it
    did, and the ETA the job gave once it was committed."""

    seq: int
    stage: int
    status: str
    items: int
    matches: int
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    eta_seconds: float | None
    processed_items: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ChunkRecord:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "stage": self.stage,
            "status": self.status,
            "items": self.items,
            "matches": self.matches,
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "durationMs": self.duration_ms,
            "etaSeconds": _round(self.eta_seconds, 1),
            "processedItems": self.processed_items,
        }


def candidate_json(result: Any, catalog_text: str | None) -> dict[str, Any]:
    """One of an item's candidates (a :class:`matching.MatchResult`) as the API shows it."""
    return {
        "catalogId": result.catalog_id,
        "catalogText": catalog_text,
        "score": round(result.score, 4),
        "method": result.method,
        "reason": result.reason,
        "explanation": [e.as_dict() for e in result.explanation],
    }


WEBHOOK_EVENT_TYPES = ("job.completed", "job.failed", "job.cancelled", "job.stage_completed")
WEBHOOK_DELIVERY_STATUSES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class Webhook:
    """A project's endpoint for job events (its secret is shown once, on creation)."""

    id: str
    project_id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Webhook:
        return cls(
            id=str(row["id"]),
            project_id=str(row["project_id"]),
            url=row["url"],
            events=tuple(row["events"]),
            created_at=row["created_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "projectId": self.project_id,
            "url": self.url,
            "events": list(self.events),
            "createdAt": _iso(self.created_at),
        }


@dataclass(frozen=True)
class WebhookDelivery:
    """One event for one webhook: its attempts so far and what the latest one got."""

    id: int
    event_id: str
    event_type: str
    job_id: str
    status: str
    attempts: int
    status_code: int | None
    error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> WebhookDelivery:
        return cls(
            id=row["id"],
            event_id=str(row["event_id"]),
            event_type=row["event_type"],
            job_id=str(row["job_id"]),
            status=row["status"],
            attempts=row["attempts"],
            status_code=row["status_code"],
            error=row["error"],
            next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
            created_at=row["created_at"],
            last_attempt_at=row["last_attempt_at"],
            delivered_at=row["delivered_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "eventId": self.event_id,
            "eventType": self.event_type,
            "jobId": self.job_id,
            "status": self.status,
            "attempts": self.attempts,
            "statusCode": self.status_code,
            "error": self.error,
            "nextAttemptAt": _iso(self.next_attempt_at),
            "createdAt": _iso(self.created_at),
            "lastAttemptAt": _iso(self.last_attempt_at),
            "deliveredAt": _iso(self.delivered_at),
        }


@dataclass(frozen=True)
class WebhookAttempt:
    """A delivery leased to this process: where to send which event, signed with what."""

    delivery_id: int
    attempt: int
    created_at: datetime
    url: str
    secret: str
    event_id: str
    event_type: str
    stage: int | None
    event_created_at: datetime
    job: Job

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> WebhookAttempt:
        return cls(
            delivery_id=row["delivery_id"],
            attempt=row["delivery_attempts"],
            created_at=row["delivery_created_at"],
            url=row["webhook_url"],
            secret=row["webhook_secret"],
            event_id=str(row["event_id"]),
            event_type=row["event_type"],
            stage=row["event_stage"],
            event_created_at=row["event_created_at"],
            job=Job.from_row(row),  # the event's snapshot of the job's row
        )
