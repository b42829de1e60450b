"""Every code snippet of the README runs as written against ``scripts/serve``.

``scripts/serve`` is started as the quick start says (on a fresh data folder and a free
port, the browser opener set to ``true``); then each fenced block runs as a reader would
run it from the repository root: ``sh`` with bash, ``js`` saved as ``example.mjs`` and run
with Node, ``sql`` against the service's database; a ``json`` block is an answer shown, and
must be one. The only edit made to a snippet is the port in ``http://127.0.0.1:8000``.
Commands run in a scratch folder that mirrors the repository root (``.venv``, ``examples``
and ``static`` linked), so what they write stays out of the clone.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from service.database import EmbeddedPostgres
from tests.conftest import free_port
from tests.e2e.processes import printed_token, start_serve, stop_serve

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DOCUMENTED_PORT = "http://127.0.0.1:8000"


def readme_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(README.read_text(encoding="utf-8"))]


def _venv_is_ready() -> bool:
    """scripts/serve reinstalls when pyproject.toml is newer than its stamp: not in a test."""
    venv = ROOT / ".venv"
    if Path(sys.executable).parent.resolve() != (venv / "bin").resolve():
        return False
    stamps = [venv / ".installed-base", venv / ".installed-test"]
    newest = max((s.stat().st_mtime for s in stamps if s.exists()), default=0.0)
    return newest >= (ROOT / "pyproject.toml").stat().st_mtime


def test_the_readme_has_the_snippets_this_test_knows_how_to_run() -> None:
    kinds = {kind for kind, _ in readme_blocks()}
    assert kinds <= {"sh", "js", "json", "sql"}, kinds
    assert {"sh", "js", "sql"} <= kinds


@pytest.mark.skipif(
    not _venv_is_ready(),
    reason="this test runs scripts/serve, which would reinstall .venv (older than "
    "pyproject.toml, or not the venv running the tests): run it via scripts/test",
)
def test_every_readme_snippet_runs_as_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "XDG_DATA_HOME", "PORT", "HOST")
        and not k.startswith("CHUNKMATCH_")
    }
    env.update(CHUNKMATCH_DATA_DIR=str(data), BROWSER="true")
    serve, output = start_serve([str(ROOT / "scripts" / "serve")], {**env, "PORT": str(port)})
    scratch = tmp_path / "repo"
    scratch.mkdir()
    for name in (".venv", "examples", "static"):
        (scratch / name).symlink_to(ROOT / name)
    try:
        admin_token = printed_token(output).token
        ran: list[str] = []
        for kind, text in readme_blocks():
            text = text.replace(DOCUMENTED_PORT, url)
            if kind == "sh" and "scripts/serve" in text:
                # the quick start: scripts/serve is the server above, scripts/test the suite
                # running this very test
                assert [line.split()[0] for line in text.splitlines()] == [
                    "scripts/serve",
                    "scripts/test",
                ]
                continue
            if kind == "sh":
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", text],
                    cwd=scratch,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert result.returncode == 0, f"{text}\n{result.stdout}\n{result.stderr}"
            elif kind == "js":
                (scratch / "example.mjs").write_text(text)
                result = subprocess.run(
                    ["node", "example.mjs"],
                    cwd=scratch,
                    env={**env, "CHUNKMATCH_TOKEN": admin_token},
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert result.returncode == 0, f"{text}\n{result.stdout}\n{result.stderr}"
                assert "1 of 1 items matched" in result.stdout, result.stdout
            elif kind == "json":
                answer = json.loads(text)
                assert answer["success"] is False
                assert set(answer["error"]) == {"code", "message", "details"}
            elif kind == "sql":
                asyncio.run(_run_sql(data, text))
            ran.append(kind)
        assert ran.count("sh") >= 2 and "js" in ran and "sql" in ran
        # what the snippets did is there: the CLI's project, matched, and its output
        assert (scratch / "matches.csv").exists()
    finally:
        stop_serve(serve)


async def _run_sql(data: Path, text: str) -> None:
    """Run a block of statements on the service's embedded database (attached to, not
    started: scripts/serve holds it)."""
    embedded = EmbeddedPostgres(data)
    dsn = embedded.start()
    try:
        conn = await asyncpg.connect(dsn)
        try:
            for statement in (s.strip() for s in text.split(";")):
                if statement and not all(
                    line.startswith("--") for line in statement.splitlines() if line.strip()
                ):
                    await conn.fetch(statement)
        finally:
            await conn.close()
    finally:
        embedded.stop()
