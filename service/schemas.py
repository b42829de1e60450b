"""JSON Schemas (OpenAPI 3.0 dialect) of chunkmatch's requests and answers.

The routes attach these to their handlers with :func:`service.openapi.operation`, and
``GET /openapi.json`` is generated from the routes; tests check the live answers against it.
"""

from __future__ import annotations

from typing import Any

from service.models import (
    JOB_STATUSES,
    PREPARATION_STEPS,
    WEBHOOK_DELIVERY_STATUSES,
    WEBHOOK_EVENT_TYPES,
)
from service.stages import JOB_TYPES, MAX_CHUNK_SIZE

Schema = dict[str, Any]
EVENT_TYPES = list(WEBHOOK_EVENT_TYPES)


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], properties: dict[str, Schema], *, closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "required": required, "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {**TIMESTAMP, "nullable": True}
SUCCESS = {"type": "boolean", "enum": [True]}

COMPONENTS: dict[str, Schema] = {
    "Error": _obj(
        ["success", "error"],
        {
            "success": {"type": "boolean", "enum": [False]},
            "error": _obj(
                ["code", "message", "details"],
                {"code": STRING, "message": STRING, "details": {"nullable": True}},
            ),
        },
    ),
    "Health": _obj(
        ["success", "status", "database"],
        {
            "success": SUCCESS,
            "status": STRING,
            "database": STRING,
        },
    ),
    "Project": _obj(
        [
            "id",
            "name",
            "owner",
            "createdAt",
            "catalogCount",
            "itemCount",
            "matchedItems",
            "unmatchedItems",
            "catalogColumns",
            "itemColumns",
        ],
        {
            "id": STRING,
            "name": STRING,
            "owner": STRING,
            "createdAt": TIMESTAMP,
            "catalogCount": INTEGER,
            "itemCount": INTEGER,
            "matchedItems": INTEGER,
            "unmatchedItems": INTEGER,
            "catalogColumns": {"type": "array", "items": STRING},
            "itemColumns": {"type": "array", "items": STRING},
            "calibration": ref("Calibration"),
        },
    ),
    "Calibration": _obj(
        ["labels", "threshold", "intercept", "slope", "estimatedPrecision", "estimatedRecall"],
        {
            "labels": {
                **INTEGER,
                "description": "reviewers' decisions the acceptance was re-fitted from (0: "
                "the default; a project is re-fitted from 20 on)",
            },
            "threshold": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "the score at or above which a job of the project accepts a "
                "match (unless its config sets a threshold)",
            },
            "intercept": {
                **NUMBER,
                "description": "chance a pair is right = sigmoid(intercept + slope * "
                "logit(score)); the default is 0 and 1",
            },
            "slope": NUMBER,
            "estimatedPrecision": {
                **NUMBER,
                "nullable": True,
                "description": "the share of the reviewed job's machine matches expected "
                "to be right under this calibration",
            },
            "estimatedRecall": {**NUMBER, "nullable": True},
            "jobId": {
                **STRING,
                "nullable": True,
                "description": "the job whose scores the estimates are of",
            },
        },
    ),
    "ReviewPair": _obj(
        [
            "itemId",
            "itemText",
            "catalogId",
            "catalogText",
            "score",
            "method",
            "reason",
            "explanation",
            "candidates",
        ],
        {
            "itemId": STRING,
            "itemText": {**STRING, "nullable": True},
            "catalogId": {
                **STRING,
                "description": "the proposed record: the item's match, or the best "
                "candidate of an unmatched item",
            },
            "catalogText": {**STRING, "nullable": True},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "method": STRING,
            "reason": STRING,
            "explanation": {"type": "array", "items": ref("Evidence")},
            "matched": {
                "type": "boolean",
                "description": "whether the job matched the item to catalogId",
            },
            "errorChance": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "the chance that the job's decision about the item is "
                "wrong (the queue's order, highest first)",
            },
            "candidates": {
                "type": "array",
                "items": _obj(
                    ["catalogId", "catalogText", "score"],
                    {
                        "catalogId": STRING,
                        "catalogText": {**STRING, "nullable": True},
                        "score": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                ),
                "description": "the item's best candidates, best first (the proposed "
                "record among them)",
            },
        },
    ),
    "JobConfig": _obj(
        [],
        {
            "itemFields": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
            },
            "catalogFields": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
            },
            "threshold": {"type": "number", "minimum": 0, "maximum": 1},
            "chunkSize": {
                "description": f"an integer from 1 to {MAX_CHUNK_SIZE} for every stage, or an "
                'object of them per stage, e.g. {"enhanced": 2000, "ai": 10}',
            },
            "jobType": {"type": "string", "enum": sorted(JOB_TYPES)},
            "oneToOne": {
                "type": "boolean",
                "description": "each catalog record used at most once per job (best score wins)",
            },
        },
    ),
    "Job": _obj(
        [
            "id",
            "projectId",
            "jobType",
            "status",
            "currentStage",
            "currentStageName",
            "stages",
            "totalItems",
            "processedItems",
            "progressPercentage",
            "matchesFound",
            "matchRate",
            "chunkSize",
            "itemsPerSecond",
            "etaSeconds",
            "estimatedCompletion",
            "createdAt",
            "startedAt",
            "completedAt",
            "updatedAt",
            "error",
            "priority",
            "attempts",
            "maxAttempts",
            "nextAttemptAt",
            "config",
            "catalogVersion",
            "itemsVersion",
            "preparation",
            "version",
        ],
        {
            "id": STRING,
            "projectId": STRING,
            "jobType": {"type": "string", "enum": sorted(JOB_TYPES)},
            "status": {"type": "string", "enum": list(JOB_STATUSES)},
            "currentStage": INTEGER,
            "currentStageName": STRING,
            "stages": {"type": "array", "items": STRING},
            "totalItems": INTEGER,
            "processedItems": INTEGER,
            "progressPercentage": {"type": "number", "minimum": 0, "maximum": 100},
            "matchesFound": INTEGER,
            "matchRate": {"type": "number", "minimum": 0, "maximum": 100},
            "chunkSize": INTEGER,
            "itemsPerSecond": {**NUMBER, "nullable": True},
            "etaSeconds": {**NUMBER, "nullable": True},
            "estimatedCompletion": NULLABLE_TIMESTAMP,
            "createdAt": TIMESTAMP,
            "startedAt": NULLABLE_TIMESTAMP,
            "completedAt": NULLABLE_TIMESTAMP,
            "updatedAt": TIMESTAMP,
            "error": {**STRING, "nullable": True},
            "priority": {"type": "integer", "minimum": 1, "maximum": 10},
            "attempts": INTEGER,
            "maxAttempts": INTEGER,
            "nextAttemptAt": NULLABLE_TIMESTAMP,
            "failedItems": INTEGER,
            "withdrawnMatches": {
                **INTEGER,
                "description": "matches the end of the job's matching stage withdrew, too "
                "unlikely right beside the job's other matches of their record "
                "(SQL: withdrawn_matches)",
            },
            "waitingReason": {**STRING, "nullable": True},
            "usage": _obj(
                [
                    "llmRequests",
                    "promptTokens",
                    "completionTokens",
                    "cacheHits",
                    "searchRequests",
                    "estimatedCostUsd",
                    "tokensPerItem",
                    "requestsPerItem",
                ],
                {
                    "llmRequests": INTEGER,
                    "promptTokens": INTEGER,
                    "completionTokens": INTEGER,
                    "cacheHits": INTEGER,
                    "searchRequests": INTEGER,
                    "estimatedCostUsd": NUMBER,
                    "tokensPerItem": NUMBER,
                    "requestsPerItem": NUMBER,
                },
            ),
            "config": {"type": "object"},
            "catalogVersion": {
                **INTEGER,
                "description": "the catalog version the job matches against (uploads after "
                "its creation affect later jobs only)",
            },
            "itemsVersion": {**INTEGER, "description": "the items version the job works on"},
            "preparation": {
                **_obj(
                    ["step", "progress"],
                    {
                        "step": {"type": "string", "enum": list(PREPARATION_STEPS)},
                        "progress": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                ),
                "nullable": True,
                "description": "while the catalog index (step catalog_index) or the items' "
                "peers (step peers) the job needs are being built, before its first chunk: "
                "what is being built and how far (0..1); a /process call meanwhile waits "
                "for it briefly and answers without a chunk; null when ready",
            },
            "version": {
                "type": "integer",
                "description": "increases with every change of the job (its events' id)",
            },
            "calibration": {
                **ref("Calibration"),
                "nullable": True,
                "description": "the project's re-fitted acceptance the job was created "
                "with; null: the default",
            },
        },
    ),
    "Evidence": _obj(
        ["signal", "value", "contribution"],
        {
            "signal": STRING,
            "value": NUMBER,
            "contribution": {
                **NUMBER,
                "description": "how far this signal moved the score, in log-odds",
            },
        },
    ),
    "Candidate": _obj(
        ["catalogId", "catalogText", "score", "method", "reason", "explanation"],
        {
            "catalogId": STRING,
            "catalogText": {**STRING, "nullable": True},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "method": STRING,
            "reason": STRING,
            "explanation": {"type": "array", "items": ref("Evidence")},
        },
    ),
    "Match": _obj(
        [
            "itemId",
            "catalogId",
            "score",
            "method",
            "reason",
            "explanation",
            "stage",
            "itemText",
            "catalogText",
            "createdAt",
        ],
        {
            "itemId": STRING,
            "catalogId": STRING,
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "method": STRING,
            "reason": STRING,
            "explanation": {
                "type": "array",
                "items": ref("Evidence"),
                "description": "what moved the score, largest first (empty for model decisions)",
            },
            "stage": INTEGER,
            "itemText": {**STRING, "nullable": True},
            "catalogText": {**STRING, "nullable": True},
            "createdAt": TIMESTAMP,
            "reviewed": {
                "type": "boolean",
                "description": "a reviewer has decided the item (method human: matched by one)",
            },
        },
    ),
    "Webhook": _obj(
        ["id", "projectId", "url", "events", "createdAt"],
        {
            "id": STRING,
            "projectId": STRING,
            "url": STRING,
            "events": {"type": "array", "items": {"type": "string", "enum": EVENT_TYPES}},
            "createdAt": TIMESTAMP,
        },
    ),
    "WebhookDelivery": _obj(
        [
            "id",
            "eventId",
            "eventType",
            "jobId",
            "status",
            "attempts",
            "statusCode",
            "error",
            "nextAttemptAt",
            "createdAt",
            "lastAttemptAt",
            "deliveredAt",
        ],
        {
            "id": INTEGER,
            "eventId": {**STRING, "description": "the webhook-id header of every attempt"},
            "eventType": {"type": "string", "enum": EVENT_TYPES},
            "jobId": STRING,
            "status": {
                "type": "string",
                "enum": list(WEBHOOK_DELIVERY_STATUSES),
                "description": "pending (to be attempted, again), delivered (a 2xx), failed "
                "(given up after CHUNKMATCH_WEBHOOK_RETRY_HOURS)",
            },
            "attempts": INTEGER,
            "statusCode": {**INTEGER, "nullable": True},
            "error": {**STRING, "nullable": True},
            "nextAttemptAt": NULLABLE_TIMESTAMP,
            "createdAt": TIMESTAMP,
            "lastAttemptAt": NULLABLE_TIMESTAMP,
            "deliveredAt": NULLABLE_TIMESTAMP,
        },
    ),
    "WebhookEvent": {
        **_obj(
            ["type", "timestamp", "data"],
            {
                "type": {"type": "string", "enum": EVENT_TYPES},
                "timestamp": {**TIMESTAMP, "description": "when the change was made"},
                "data": _obj(
                    ["job"],
                    {
                        "job": {
                            **ref("Job"),
                            "description": "the job as the change left it",
                        },
                        "stage": _obj(
                            ["number", "name"],
                            {"number": INTEGER, "name": {**STRING, "nullable": True}},
                        ),
                    },
                    closed=False,
                ),
            },
            closed=False,
        ),
        "description": "The body POSTed to a webhook's URL for each job event: "
        "job.completed, job.failed, job.cancelled, and job.stage_completed (with data.stage: "
        "the stage that ended). Headers (Standard Webhooks 1.0): webhook-id (the event's id, "
        "the same on every attempt: de-duplicate by it), webhook-timestamp (Unix seconds of "
        "the attempt), webhook-signature (v1,<base64 HMAC-SHA256 of "
        '"{webhook-id}.{webhook-timestamp}.{body}" keyed with the base64-decoded secret after '
        "whsec_>). Any 2xx answer within 10 s is success; anything else (a redirect included) "
        "is retried with exponential backoff for at least 24 h, a job's events in order.",
    },
}

# -- request bodies ---------------------------------------------------------------------

PROJECT_CREATE = _obj(["name"], {"name": {"type": "string", "minLength": 1, "maxLength": 200}})
RECORDS_UPLOAD = _obj(
    ["records"],
    {
        "records": {"type": "array", "minItems": 1, "items": {"type": "object"}},
        "idField": {"type": "string", "minLength": 1},
    },
)
CSV_BODY = {"type": "string", "description": "CSV text: a header row, then one record a line"}
XLSX_BODY = {
    "type": "string",
    "format": "binary",
    "description": "an .xlsx workbook: its first sheet, the first row as the header",
}
JOB_CREATE = _obj(
    ["projectId", "jobType"],
    {
        "projectId": STRING,
        "jobType": {"type": "string", "enum": sorted(JOB_TYPES)},
        "priority": {"type": "integer", "minimum": 1, "maximum": 10},
        "config": ref("JobConfig"),
    },
)
JOB_PATCH = _obj(
    ["status"],
    {
        "status": {"type": "string", "enum": ["failed", "cancelled"]},
        "error": {"type": "string", "maxLength": 2000},
        "completedAt": TIMESTAMP,
    },
)
CRON_REQUEST = _obj(
    [],
    {
        "maxJobs": {"type": "integer", "minimum": 1, "maximum": 1000},
        "timeout": {
            "type": "integer",
            "minimum": 1,
            "maximum": 300000,
            "description": "time budget, milliseconds",
        },
    },
)
CLEANUP_REQUEST = _obj([], {"daysOld": {"type": "number", "minimum": 0, "maximum": 36500}})

# -- answers ------------------------------------------------------------------------------

PROJECT_ANSWER = _obj(["success", "project"], {"success": SUCCESS, "project": ref("Project")})
PROJECT_LIST = _obj(
    ["success", "projects"],
    {
        "success": SUCCESS,
        "projects": {"type": "array", "items": ref("Project")},
    },
)
UPLOAD_ANSWER = _obj(
    ["success", "inserted", "updated", "total"],
    {
        "success": SUCCESS,
        "inserted": INTEGER,
        "updated": INTEGER,
        "total": INTEGER,
        "encoding": {"type": "string", "description": "CSV: the encoding it was read with"},
    },
)
JOB_ANSWER = _obj(["success", "job"], {"success": SUCCESS, "job": ref("Job"), "message": STRING})
JOB_LIST = _obj(
    ["success", "jobs"],
    {
        "success": SUCCESS,
        "jobs": {"type": "array", "items": ref("Job")},
    },
)
MATCHES_PAGE = _obj(
    ["success", "matches", "nextCursor"],
    {
        "success": SUCCESS,
        "matches": {"type": "array", "items": ref("Match")},
        "nextCursor": {**STRING, "nullable": True},
    },
)
MATCHES_CSV = {
    "type": "string",
    "description": "item_id, item_text, catalog_id, catalog_text, score, method, reason, "
    "reviewed (true when a reviewer decided the item)",
}
STATUS_ANSWER = _obj(
    ["success", "counts", "oldestPendingSeconds", "successRate", "averageDurationSeconds"],
    {
        "success": SUCCESS,
        "counts": {"type": "object", "additionalProperties": INTEGER},
        "oldestPendingSeconds": {**NUMBER, "nullable": True},
        "successRate": {**NUMBER, "nullable": True},
        "averageDurationSeconds": {**NUMBER, "nullable": True},
    },
)
CRON_ANSWER = _obj(
    ["success", "chunks", "items", "matches", "elapsedMs", "jobs"],
    {
        "success": SUCCESS,
        "chunks": INTEGER,
        "items": INTEGER,
        "matches": INTEGER,
        "elapsedMs": INTEGER,
        "deletedJobs": INTEGER,
        "jobs": {
            "type": "array",
            "items": _obj(
                ["jobId", "chunks", "items", "matches", "status", "message"],
                {
                    "jobId": STRING,
                    "chunks": INTEGER,
                    "items": INTEGER,
                    "matches": INTEGER,
                    "status": STRING,
                    "message": STRING,
                },
            ),
        },
    },
)
REVIEW_PAGE = _obj(
    ["success", "pairs", "nextCursor", "total", "decided"],
    {
        "success": SUCCESS,
        "pairs": {"type": "array", "items": ref("ReviewPair")},
        "nextCursor": {**STRING, "nullable": True},
        "total": {
            "type": "integer",
            "minimum": 0,
            "description": "decisions the job queued for review (its committed chunks')",
        },
        "decided": {
            "type": "integer",
            "minimum": 0,
            "description": "of those, how many are decided in the project",
        },
    },
)
REVIEW_DECISIONS = _obj(
    ["decisions"],
    {
        "decisions": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1000,
            "items": _obj(
                ["itemId", "decision"],
                {
                    "itemId": {"type": "string", "minLength": 1},
                    "catalogId": {**STRING, "nullable": True},
                    "decision": {"type": "string", "enum": ["match", "no-match"]},
                },
            ),
        }
    },
)
REVIEW_ANSWER = _obj(
    ["success", "applied", "calibration"],
    {"success": SUCCESS, "applied": INTEGER, "calibration": ref("Calibration")},
)
CANDIDATES = _obj(
    ["success", "itemId", "candidates"],
    {
        "success": SUCCESS,
        "itemId": STRING,
        "candidates": {"type": "array", "items": ref("Candidate")},
    },
)
JOB_CHUNKS = _obj(
    ["success", "chunks", "nextCursor"],
    {
        "success": SUCCESS,
        "chunks": {
            "type": "array",
            "items": _obj(
                [
                    "seq",
                    "stage",
                    "status",
                    "items",
                    "matches",
                    "startedAt",
                    "finishedAt",
                    "durationMs",
                    "etaSeconds",
                    "processedItems",
                ],
                {
                    "seq": INTEGER,
                    "stage": INTEGER,
                    "status": {"type": "string", "enum": ["running", "done"]},
                    "items": INTEGER,
                    "matches": INTEGER,
                    "startedAt": TIMESTAMP,
                    "finishedAt": {**TIMESTAMP, "nullable": True},
                    "durationMs": {**INTEGER, "nullable": True},
                    "etaSeconds": {**NUMBER, "nullable": True},
                    "processedItems": {**INTEGER, "nullable": True},
                },
            ),
        },
        "nextCursor": {**STRING, "nullable": True},
    },
)

FAILED_ITEMS = _obj(
    ["success", "items"],
    {
        "success": SUCCESS,
        "items": {
            "type": "array",
            "items": _obj(
                ["itemId", "stage", "error"],
                {
                    "itemId": STRING,
                    "stage": INTEGER,
                    "error": {**STRING, "nullable": True},
                },
            ),
        },
    },
)
CLEANUP_ANSWER = _obj(
    ["success", "deleted", "daysOld"],
    {
        "success": SUCCESS,
        "deleted": INTEGER,
        "daysOld": NUMBER,
    },
)
EVENTS_TICKET = _obj(
    ["success", "ticket", "expiresAt"],
    {
        "success": SUCCESS,
        "ticket": {
            "type": "string",
            "description": "pass as ?ticket= to GET /api/jobs/{job_id}/events (that job only)",
        },
        "expiresAt": {**TIMESTAMP, "description": "connect before this (60 s)"},
    },
)
JOB_EVENTS = {
    "type": "string",
    "description": "Server-Sent Events: `event: progress` frames whose `id:` is the job's "
    "version and whose `data:` is the job's JSON (as GET /api/jobs/{job_id} shows it): one on "
    "connect, then one per committed change; comment lines keep the stream open; it ends "
    "after a finished job's event",
}

WEBHOOK_CREATE = _obj(
    ["url", "events"],
    {
        "url": {
            "type": "string",
            "minLength": 1,
            "maxLength": 2048,
            "description": "https, resolving to public addresses only (unless "
            "CHUNKMATCH_WEBHOOK_ALLOW_PRIVATE=true)",
        },
        "events": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "enum": EVENT_TYPES},
        },
    },
)
_WEBHOOK = COMPONENTS["Webhook"]
WEBHOOK_CREATED = _obj(
    ["success", "webhook"],
    {
        "success": SUCCESS,
        "webhook": _obj(
            [*_WEBHOOK["required"], "secret"],
            {
                **_WEBHOOK["properties"],
                "secret": {
                    "type": "string",
                    "description": "whsec_ + base64 of 32 random bytes; shown only here",
                },
            },
        ),
    },
)
WEBHOOK_LIST = _obj(
    ["success", "webhooks"],
    {"success": SUCCESS, "webhooks": {"type": "array", "items": ref("Webhook")}},
)
WEBHOOK_DELIVERIES = _obj(
    ["success", "deliveries", "nextBefore"],
    {
        "success": SUCCESS,
        "deliveries": {"type": "array", "items": ref("WebhookDelivery")},
        "nextBefore": {**INTEGER, "nullable": True},
    },
)
WEBHOOK_CALLBACKS = {
    "jobEvent": {
        "{$request.body#/url}": {
            "post": {
                "summary": "A job event, signed (Standard Webhooks 1.0)",
                "parameters": [
                    {"name": name, "in": "header", "required": True, "schema": STRING}
                    for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("WebhookEvent")}},
                },
                "responses": {"2XX": {"description": "received; any other answer is retried"}},
            }
        }
    }
}
