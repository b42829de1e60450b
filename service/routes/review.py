"""Review: a job's most uncertain decisions, and the reviewers' answers to them."""

from __future__ import annotations

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse

from service import review
from service import schemas as S
from service.auth import principal
from service.inputs import query_int, read_json_object
from service.openapi import operation, query
from service.routes.jobs import _job

REVIEW_PAGE = 50
MAX_REVIEW_PAGE = 500


class JobReview(HTTPEndpoint):
    @operation(
        "The job's review queue: its decisions most likely wrong first (matches near the "
        "acceptance boundary, unmatched items whose best candidate may be right), leaving "
        "out items already decided in the project; while the job runs, what its committed "
        "chunks decided",
        params=[
            query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_REVIEW_PAGE}),
            query("cursor", {"type": "string"}, "the nextCursor of the previous page"),
        ],
        responses={200: S.REVIEW_PAGE},
    )
    async def get(self, request: Request) -> JSONResponse:
        job = await _job(request)
        limit = query_int(request, "limit", REVIEW_PAGE, minimum=1, maximum=MAX_REVIEW_PAGE)
        after = review.decode_cursor(request.query_params.get("cursor"))
        store = request.app.state.store
        pairs = await store.review_page(job, after=after, limit=limit)
        total, decided = await store.review_counts(job)
        next_cursor = None
        if len(pairs) == limit:
            next_cursor = review.encode_cursor(pairs[-1].error_chance, pairs[-1].item_id)
        return JSONResponse(
            {
                "success": True,
                "pairs": [p.to_json() for p in pairs],
                "nextCursor": next_cursor,
                "total": total,
                "decided": decided,
            }
        )

    @operation(
        "Decide items of the job: 'match' makes catalogId the item's match (method human, "
        "score 1.0); 'no-match' with a catalogId says that pair is wrong, with null that the "
        "item has no counterpart. All or nothing; decisions win over later chunks and jobs; "
        "from 20 decisions on, the project's acceptance is re-fitted from them",
        body=S.REVIEW_DECISIONS,
        responses={200: S.REVIEW_ANSWER},
    )
    async def post(self, request: Request) -> JSONResponse:
        job = await _job(request)
        body = await read_json_object(request, allowed={"decisions"}, required={"decisions"})
        decisions = review.read_decisions(body)
        store = request.app.state.store
        await store.apply_decisions(job, decisions, decided_by=principal(request).owner)
        calibration = await review.refit(store, job)
        return JSONResponse(
            {"success": True, "applied": len(decisions), "calibration": calibration}
        )
