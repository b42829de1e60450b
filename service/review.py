"""Human review: reading a request's decisions, and re-fitting a project's acceptance.

The routes (``service/routes/review.py``) hand a request's decisions here to be checked as a
whole before anything is applied; after decisions are applied, the project's calibration is
re-fitted from all of its decisions (:mod:`matching.calibration`, a pure function) and its
expected precision and recall are estimated on the scores of the job reviewed.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from matching.calibration import (
    Calibration,
    estimate_precision_recall,
    fit_acceptance,
    labels_from_rows,
)
from service.exceptions import ValidationError, shown
from service.models import Job, ReviewDecision
from service.store import Store

DECISIONS = ("match", "no-match")
MAX_DECISIONS = 1000
"""Decisions one request may carry."""

MAX_ID_CHARS = 1000

HISTOGRAM_BINS = 200
"""Score bins of a job's best candidates that its expected precision and recall are
estimated from (bins 0.005 wide: finer changes nothing the figures show)."""


def read_decisions(body: dict[str, Any]) -> list[ReviewDecision]:
    """A request's ``decisions``, checked as a whole: any problem is a
    :class:`ValidationError` naming the decision (and item) at fault."""
    raw = body.get("decisions")
    if not isinstance(raw, list) or not raw:
        raise ValidationError("decisions must be a non-empty list")
    if len(raw) > MAX_DECISIONS:
        raise ValidationError(f"at most {MAX_DECISIONS} decisions per request, got {len(raw):,}")
    decisions: list[ReviewDecision] = []
    seen: dict[str, int] = {}
    for n, entry in enumerate(raw):
        where = f"decisions[{n}]"
        if not isinstance(entry, dict):
            raise ValidationError(f"{where} must be an object")
        extra = sorted(set(entry) - {"itemId", "catalogId", "decision"})
        if extra:
            raise ValidationError(f"{where}: unknown field(s) {shown(extra)}")
        item_id, catalog_id, decision = (
            entry.get("itemId"),
            entry.get("catalogId"),
            entry.get("decision"),
        )
        if not isinstance(item_id, str) or not item_id or len(item_id) > MAX_ID_CHARS:
            raise ValidationError(f"{where}: itemId must be a non-empty string")
        if catalog_id is not None and (
            not isinstance(catalog_id, str) or not catalog_id or len(catalog_id) > MAX_ID_CHARS
        ):
            raise ValidationError(
                f"{where} (item {shown(item_id)}): catalogId must be a string or null"
            )
        if decision not in DECISIONS:
            raise ValidationError(
                f"{where} (item {shown(item_id)}): unknown decision {shown(decision)}; "
                f"expected one of {list(DECISIONS)}",
                details={"itemId": item_id, "index": n},
            )
        if decision == "match" and catalog_id is None:
            raise ValidationError(
                f"{where} (item {shown(item_id)}): a match needs the catalogId it is with",
                details={"itemId": item_id, "index": n},
            )
        if item_id in seen:
            raise ValidationError(
                f"{where}: item {shown(item_id)} is decided twice in one request "
                f"(also decisions[{seen[item_id]}])",
                details={"itemId": item_id, "index": n},
            )
        seen[item_id] = n
        decisions.append(ReviewDecision(item_id, catalog_id, decision))
    return decisions


def encode_cursor(error_chance: float, item_id: str) -> str:
    raw = json.dumps([error_chance, item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None) -> tuple[float, str] | None:
    """The keyset a ``nextCursor`` names; :class:`ValidationError` for anything else."""
    if not raw:
        return None
    problem = ValidationError("cursor is not valid; pass the nextCursor of a previous page")
    if len(raw) > 4 * MAX_ID_CHARS:
        raise problem
    try:
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise problem from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or isinstance(value[0], bool)
        or not isinstance(value[0], int | float)
        or not isinstance(value[1], str)
    ):
        raise problem
    return float(value[0]), value[1]


def calibration_json(
    calibration: Calibration,
    precision: float | None,
    recall: float | None,
    *,
    job_id: str | None,
) -> dict[str, Any]:
    return {
        "labels": calibration.labels,
        "threshold": round(calibration.threshold, 4),
        "intercept": round(calibration.intercept, 4),
        "slope": round(calibration.slope, 4),
        "estimatedPrecision": precision,
        "estimatedRecall": recall,
        "jobId": job_id,
    }


def default_calibration() -> dict[str, Any]:
    return calibration_json(Calibration(), None, None, job_id=None)


async def refit(store: Store, job: Job) -> dict[str, Any]:
    """Re-fit the project's calibration from all its decisions, store it (its next jobs use
    it) and answer it, with the precision and recall expected of ``job`` under it."""
    histogram = await store.job_score_histogram(job.id, bins=HISTOGRAM_BINS)

    def fit(rows: list[tuple[float, bool | None]]) -> dict[str, Any]:
        scores, right = labels_from_rows(rows)
        calibration = fit_acceptance(scores, right, histogram)
        precision, recall = estimate_precision_recall(calibration, histogram)
        return calibration_json(calibration, precision, recall, job_id=job.id)

    return await store.refit_calibration(job.project_id, fit)
