"""Projects and their two record sets: the catalog and the items."""

from __future__ import annotations

import asyncio
import uuid

from starlette.background import BackgroundTask
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import schemas as S
from service.auth import principal
from service.exceptions import NotFound, UnsupportedMediaType, ValidationError, shown
from service.ingest import ParsedUpload, parse_json_records, text_problem
from service.inputs import (
    is_json_media_type,
    media_type,
    path_id,
    query_flag,
    query_int,
    read_body_buffer,
    read_json,
    read_json_object,
)
from service.openapi import operation, query
from service.review import default_calibration
from service.tables import (
    XLSX_CONTENT_TYPE,
    batches_off_loop,
    looks_like_xlsx,
    read_csv,
    read_xlsx,
)

MAX_NAME_LENGTH = 200
UPLOAD_PARAMS = [
    query("idField", {"type": "string"}, "CSV and .xlsx: the id column (default id)"),
    query(
        "encoding",
        {"type": "string"},
        "CSV only: utf-8, latin-1, cp1252, ... (default: detected, and named in the answer)",
    ),
]


def _store(request: Request):
    return request.app.state.store


class Projects(HTTPEndpoint):
    @operation(
        "List your projects, newest first",
        responses={200: S.PROJECT_LIST},
        params=[query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
    )
    async def get(self, request: Request) -> JSONResponse:
        limit = query_int(request, "limit", 100, minimum=1, maximum=1000)
        projects = await _store(request).list_projects(limit=limit, owner=principal(request).scope)
        return JSONResponse({"success": True, "projects": [p.to_json() for p in projects]})

    @operation("Create a project", body=S.PROJECT_CREATE, responses={201: S.PROJECT_ANSWER})
    async def post(self, request: Request) -> JSONResponse:
        body = await read_json_object(request, allowed={"name"}, required={"name"})
        name = body["name"]
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name must be a non-empty string")
        if len(name) > MAX_NAME_LENGTH:
            raise ValidationError(f"name must be at most {MAX_NAME_LENGTH} characters")
        problem = text_problem(name)
        if problem:
            raise ValidationError(f"name {problem}")
        project = await _store(request).create_project(
            name.strip(),
            owner=principal(request).owner,
            max_projects=request.app.state.settings.max_projects_per_owner or None,
        )
        return JSONResponse({"success": True, "project": project.to_json()}, status_code=201)


class ProjectDetail(HTTPEndpoint):
    @operation(
        "A project with its counts and its acceptance (re-fitted from its reviewers' "
        "decisions, or the default)",
        responses={200: S.PROJECT_ANSWER},
    )
    async def get(self, request: Request) -> JSONResponse:
        project_id = path_id(request, "project_id", "project")
        project = await _store(request).get_project(project_id, owner=principal(request).scope)
        if project is None:
            raise NotFound(f"no project with id {project_id}")
        calibration = dict(project.calibration or default_calibration())
        return JSONResponse(
            {"success": True, "project": project.to_json() | {"calibration": calibration}}
        )

    @operation(
        "Delete the project with its records, jobs and matches",
        responses={204: None},
        params=[
            query(
                "force",
                {"type": "boolean"},
                "cancel the project's unfinished jobs first (else they make this a 409)",
            )
        ],
    )
    async def delete(self, request: Request) -> Response:
        project_id = await owned_project(request)
        force = query_flag(request, "force", default=False)
        if not await _store(request).delete_project(project_id, force=force):
            raise NotFound(f"no project with id {project_id}")
        request.app.state.engine.index_cache.forget(str(project_id))
        return Response(status_code=204)


async def owned_project(request: Request) -> uuid.UUID:
    """The path's project id, if the caller may see that project; else a 404."""
    project_id = path_id(request, "project_id", "project")
    if await _store(request).get_project(project_id, owner=principal(request).scope) is None:
        raise NotFound(f"no project with id {project_id}")
    return project_id


CSV_TYPES = ("text/csv", "application/csv", "text/plain")


def _max_records(request: Request) -> int | None:
    return request.app.state.settings.max_records_per_project or None


async def _upload_table(
    request: Request, project_id: uuid.UUID, kind: str, content_type: str
) -> dict | None:
    """A CSV or .xlsx body: parsed in a worker thread, copied batch by batch as it goes."""
    id_field = request.query_params.get("idField", "id")
    encoding = request.query_params.get("encoding") or None
    buffer = await read_body_buffer(request)
    with buffer.getbuffer() as view:
        xlsx = content_type == XLSX_CONTENT_TYPE or looks_like_xlsx(view)
    if xlsx:
        table = await asyncio.to_thread(read_xlsx, buffer, id_field=id_field)
    else:
        table = await asyncio.to_thread(read_csv, buffer, id_field=id_field, encoding=encoding)
    result = await _store(request).upload_table(
        project_id,
        kind,
        table.columns,
        batches_off_loop(table.batches),
        line_word="row" if xlsx else "line",
        max_records=_max_records(request),
    )
    if result is None:
        return None
    answer = result.to_json()
    if table.encoding is not None:
        answer["encoding"] = table.encoding
    return answer


async def _upload_json(request: Request, project_id: uuid.UUID, kind: str) -> dict | None:
    if "idField" in request.query_params or "encoding" in request.query_params:
        raise ValidationError(
            "idField/encoding query parameters apply to CSV uploads; put idField in the JSON body"
        )
    upload: ParsedUpload = parse_json_records(await read_json(request))
    result = await _store(request).upload_records(
        project_id, kind, upload.records, upload.columns, max_records=_max_records(request)
    )
    return None if result is None else result.to_json()


class _Upload(HTTPEndpoint):
    kind = ""

    @operation(
        "Insert or replace records (JSON, CSV or an .xlsx workbook's first sheet)",
        body={
            "application/json": S.RECORDS_UPLOAD,
            "text/csv": S.CSV_BODY,
            XLSX_CONTENT_TYPE: S.XLSX_BODY,
        },
        responses={200: S.UPLOAD_ANSWER},
        params=UPLOAD_PARAMS,
    )
    async def post(self, request: Request) -> JSONResponse:
        project_id = await owned_project(request)
        content_type = media_type(request)
        if content_type in CSV_TYPES or content_type == XLSX_CONTENT_TYPE:
            answer = await _upload_table(request, project_id, self.kind, content_type)
        elif is_json_media_type(content_type):
            answer = await _upload_json(request, project_id, self.kind)
        else:
            raise UnsupportedMediaType(
                f"unsupported Content-Type {shown(content_type)}: send application/json "
                '({"records": [...], "idField": "id"}), text/csv or '
                f"{XLSX_CONTENT_TYPE} (an .xlsx workbook)"
            )
        if answer is None:
            raise NotFound(f"no project with id {project_id}")
        # a new catalog or items version: build the index and the peers now, after the
        # answer, so the first chunk of the next job does not wait for them
        warm = BackgroundTask(request.app.state.engine.prewarm, str(project_id))
        return JSONResponse(answer, background=warm)


class CatalogUpload(_Upload):
    kind = "catalog"


class ItemsUpload(_Upload):
    kind = "items"


class _Record(HTTPEndpoint):
    kind = ""
    what = ""

    @operation("Delete one record, every version of it, and its matches", responses={204: None})
    async def delete(self, request: Request) -> Response:
        project_id = await owned_project(request)
        record_id = request.path_params["record_id"]
        if not await _store(request).delete_record(project_id, self.kind, record_id):
            raise NotFound(f"no {self.what} with id {shown(record_id)} in project {project_id}")
        engine = request.app.state.engine
        engine.index_cache.forget(str(project_id))
        # the next job's index and peers, built after the answer
        return Response(status_code=204, background=BackgroundTask(engine.prewarm, str(project_id)))


class CatalogRecord(_Record):
    kind = "catalog"
    what = "catalog record"


class ItemRecord(_Record):
    kind = "items"
    what = "item"
