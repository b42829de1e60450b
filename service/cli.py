"""``chunkmatch``: run the service, or match two CSV files from the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from service.exceptions import ConfigurationError
from service.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.app import create_app
    from service.database import checked_data_dir

    if settings.database_url is None:
        checked_data_dir(settings.data_dir)  # refuse a bad data directory before starting
    app = create_app(settings)
    url = f"http://{args.host}:{args.port}/"
    print(f"chunkmatch: serving on {url}  (Ctrl+C to stop)", flush=True)
    if args.open:
        import threading
        import webbrowser

        threading.Timer(2.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from service.worker import run_worker

    return asyncio.run(run_worker(settings))


def _token(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from service.runtime import open_runtime

    async def act() -> int:
        async with open_runtime(settings) as runtime:
            store = runtime.store
            if args.token_command == "create":
                owner = args.owner.strip()
                if not owner or len(owner) > 200:
                    print("chunkmatch: --owner must be 1 to 200 characters", file=sys.stderr)
                    return 2
                token, record = await store.create_token(owner, is_admin=args.admin)
                kind = "admin token" if record.is_admin else "token"
                print(
                    f"created {kind} {record.prefix}... (id {record.id}) for owner {owner!r}; "
                    "it is shown only now:"
                )
                print(token)
                return 0
            if args.token_command == "list":
                for t in await store.list_tokens():
                    state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
                    role = "admin" if t.is_admin else "owner"
                    print(
                        f"{t.id}  {t.prefix}...  {t.owner:20s} {role:5s}  "
                        f"created {t.created_at:%Y-%m-%d %H:%M}  {state}"
                    )
                return 0
            revoked = await store.revoke_token(args.id)
            if revoked is None:
                print(f"chunkmatch: no active token {args.id!r}", file=sys.stderr)
                return 1
            print(f"revoked token {revoked.prefix}... of owner {revoked.owner!r}")
            return 0

    return asyncio.run(act())


def _project(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import uuid

    from service.exceptions import Conflict
    from service.runtime import open_runtime

    try:
        project_id = uuid.UUID(args.id)
    except ValueError:
        print(f"chunkmatch: {args.id!r} is not a project id", file=sys.stderr)
        return 2

    async def act() -> int:
        async with open_runtime(settings) as runtime:
            try:
                deleted = await runtime.store.delete_project(project_id, force=args.force)
            except Conflict as exc:
                print(f"chunkmatch: {exc.message}", file=sys.stderr)
                return 1
            if not deleted:
                print(f"chunkmatch: no project {project_id}", file=sys.stderr)
                return 1
            print(f"deleted project {project_id} with its records, jobs and matches")
            return 0

    return asyncio.run(act())


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from service.run_client import run_matching

    return run_matching(args, settings)


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chunkmatch",
        description="Match items against a catalog as chunked, resumable jobs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web service (embedded PostgreSQL by default)")
    serve.add_argument("--host", default=settings.host)
    serve.add_argument("--port", type=int, default=settings.port)
    serve.add_argument("--open", action="store_true", help="open the page in a web browser")
    serve.set_defaults(handler=_serve)

    worker = sub.add_parser("worker", help="advance runnable jobs in the background")
    worker.set_defaults(handler=_worker)

    token = sub.add_parser("token", help="manage API tokens (create, list, revoke)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token; its last output line is it")
    create.add_argument("--owner", required=True, help="who the token acts for")
    create.add_argument("--admin", action="store_true", help="may see and act on everything")
    token_sub.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke = token_sub.add_parser("revoke", help="revoke a token by id or shown prefix")
    revoke.add_argument("id")
    token.set_defaults(handler=_token)

    project = sub.add_parser("project", help="manage projects (delete)")
    project_sub = project.add_subparsers(dest="project_command", required=True)
    delete = project_sub.add_parser(
        "delete", help="delete a project with its records, jobs and matches"
    )
    delete.add_argument("id", help="the project's id")
    delete.add_argument(
        "--force", action="store_true", help="cancel its unfinished jobs first (else refused)"
    )
    project.set_defaults(handler=_project)

    run = sub.add_parser("run", help="match ITEMS.csv against CATALOG.csv and write the matches")
    run.add_argument("--items", required=True, help="CSV file of the items to match")
    run.add_argument("--catalog", required=True, help="CSV file of the catalog")
    run.add_argument("--item-id", default="id", help="id column of the items (default id)")
    run.add_argument("--catalog-id", default="id", help="id column of the catalog (default id)")
    run.add_argument("--item-fields", nargs="+", help="item columns to match (default name/title)")
    run.add_argument("--catalog-fields", nargs="+", help="catalog columns to match")
    run.add_argument(
        "--encoding", default="utf-8", help="encoding of both CSV files (utf-8, latin-1, cp1252...)"
    )
    run.add_argument("--job-type", default="enhanced")
    run.add_argument("--threshold", type=float, help="match threshold, 0..1")
    run.add_argument("--chunk-size", type=int, help="items per chunk")
    run.add_argument("--out", default="matches.csv", help="where to write the matches CSV")
    run.add_argument("--server", help="URL of a running chunkmatch (default: start one here)")
    run.add_argument(
        "--token",
        help="API token (default: $CHUNKMATCH_TOKEN, else the local admin token of the data dir)",
    )
    run.add_argument("--project-name", help="name of the project to create")
    run.set_defaults(handler=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        print(f"chunkmatch: {exc.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no per-request lines on a terminal
    args = build_parser(settings).parse_args(argv)
    try:
        return args.handler(args, settings)
    except ConfigurationError as exc:
        print(f"chunkmatch: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
