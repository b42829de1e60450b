"""A regular install ships the page: build the wheel, install it into a fresh venv, start
``chunkmatch serve`` from another folder and load ``/`` and ``/static/job-manager.js``
(an editable install finds ``static/`` beside the source and would hide the bug)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from tests.conftest import drop_database, dsn_for, free_port, make_database
from tests.e2e.processes import LOG_DIR, process_env, wait_healthy

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "service", "matching", "static")
# every file of the page, its views included
PAGE_FILES = tuple(
    p.relative_to(REPO / "static").as_posix()
    for p in sorted((REPO / "static").rglob("*"))
    if p.is_file()
)


def _run(*args: str | Path, cwd: Path, timeout: float = 600) -> None:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _build_wheel(tmp_path: Path) -> Path:
    # from a copy, so that the build leaves nothing in the checkout
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, source / name)
    wheels = tmp_path / "wheels"
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source, cwd=tmp_path
    )
    (wheel,) = wheels.glob("chunkmatch-*.whl")
    return wheel


async def test_an_installed_package_serves_the_page(
    tmp_path: Path, pg_server_dsn: str, template_dsn: str
) -> None:
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for page_file in PAGE_FILES:
        assert f"service/static/{page_file}" in names, sorted(names)
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    name = await make_database(pg_server_dsn, "wheel")
    port = free_port()
    LOG_DIR.mkdir(exist_ok=True)
    with open(LOG_DIR / f"wheel-serve-{port}.log", "w") as log:
        proc = subprocess.Popen(
            [str(venv / "bin" / "chunkmatch"), "serve", "--port", str(port)],
            cwd=elsewhere,
            env=process_env(dsn_for(pg_server_dsn, name)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        async with httpx.AsyncClient(base_url=url) as c:
            page = await c.get("/")
            assert page.status_code == 200, page.text
            assert page.text == (REPO / "static" / "index.html").read_text(encoding="utf-8")
            script = await c.get("/static/job-manager.js")
            assert script.status_code == 200, script.text
            assert "javascript" in script.headers["content-type"]
            assert script.text == (REPO / "static" / "job-manager.js").read_text(encoding="utf-8")
    finally:
        proc.terminate()
        proc.wait(30)
        await drop_database(pg_server_dsn, name)
