"""The console script as a user runs it: zero-config serve, SIGTERM, `chunkmatch run`."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port
from tests.e2e.helpers import products
from tests.e2e.processes import wait_healthy

CHUNKMATCH = str(Path(sys.executable).parent / "chunkmatch")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(extra)
    return env


def _postgres_for(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_zero_config_serve_starts_embedded_postgres_and_stops_it_on_sigterm(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    proc = subprocess.Popen(
        [CHUNKMATCH, "serve", "--port", str(port)],
        env=_env(CHUNKMATCH_DATA_DIR=str(data_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert page.headers["x-content-type-options"] == "nosniff"
        # zero configuration: a local admin token, saved for the user alone
        token_file = data_dir / "admin-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        assert httpx.get(f"{url}/api/projects").status_code == 401
        r = httpx.get(f"{url}/api/projects", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert _postgres_for(data_dir / "pgdata"), "embedded PostgreSQL is not running"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 20
    while _postgres_for(data_dir / "pgdata") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _postgres_for(data_dir / "pgdata"), "embedded PostgreSQL outlived the service"


@pytest.mark.skipif(os.geteuid() != 0, reason="the /root rule applies when running as root")
def test_serve_refuses_a_data_dir_under_root() -> None:
    result = subprocess.run(
        [CHUNKMATCH, "serve", "--port", str(free_port())],
        env=_env(CHUNKMATCH_DATA_DIR="/root/chunkmatch-data"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "outside /root" in result.stderr


def _write_csv(path: Path, rows: list[dict], encoding: str = "utf-8") -> None:
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_run_against_a_server(tmp_path: Path, live_server) -> None:
    catalog = products(300, "c")
    items = [{"sku": f"i{n}", "title": r["name"].upper()} for n, r in enumerate(catalog)]
    _write_csv(tmp_path / "catalog.csv", catalog)
    _write_csv(tmp_path / "items.csv", items, encoding="cp1252")
    out = tmp_path / "out.csv"
    result = subprocess.run(
        [
            CHUNKMATCH,
            "run",
            "--items",
            str(tmp_path / "items.csv"),
            "--catalog",
            str(tmp_path / "catalog.csv"),
            "--item-id",
            "sku",
            "--item-fields",
            "title",
            "--encoding",
            "cp1252",
            "--chunk-size",
            "50",
            "--out",
            str(out),
            "--server",
            live_server.url,
            "--token",
            live_server.token,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "100.0%" in result.stderr and "ETA" in result.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert [r["item_id"] for r in rows] == [i["sku"] for i in items]  # every item, in order
    matched = [r for r in rows if r["catalog_id"]]
    assert len(matched) >= 290
    assert all(r["catalog_id"] == "c" + r["item_id"][1:] for r in matched)


def test_run_reads_xlsx_and_detects_the_encoding(tmp_path: Path, live_server) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["id", "name"])
    for n, row in enumerate(products(40, "c")):
        book.active.append([row["id"], f"{row['name']} Crème® {n}"])
    book.save(tmp_path / "catalog.xlsx")
    items = [{"id": f"i{n}", "name": f"{r['name']} crème® {n}"} for n, r in enumerate(products(40))]
    _write_csv(tmp_path / "items.csv", items, encoding="cp1252")
    result = subprocess.run(
        [CHUNKMATCH, "run", "--items", str(tmp_path / "items.csv")]
        + ["--catalog", str(tmp_path / "catalog.xlsx"), "--out", str(tmp_path / "out.csv")]
        + ["--server", live_server.url, "--token", live_server.token],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "uploaded catalog: 40 records\n" in result.stderr
    assert "uploaded items: 40 records (read as cp1252)" in result.stderr
    rows = list(csv.DictReader((tmp_path / "out.csv").open(encoding="utf-8-sig")))
    assert {r["catalog_id"] for r in rows} == {f"c{n}" for n in range(40)}
    assert any("Crème®" in r["catalog_text"] for r in rows)


def test_run_with_no_server_starts_one_and_finds_its_token(tmp_path: Path) -> None:
    catalog = products(50, "c")
    _write_csv(tmp_path / "catalog.csv", catalog)
    _write_csv(tmp_path / "items.csv", [{"id": r["id"], "name": r["name"]} for r in catalog])
    out = tmp_path / "out.csv"
    result = subprocess.run(
        [
            CHUNKMATCH,
            "run",
            "--items",
            str(tmp_path / "items.csv"),
            "--catalog",
            str(tmp_path / "catalog.csv"),
            "--out",
            str(out),
        ],
        env=_env(CHUNKMATCH_DATA_DIR=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert len(list(csv.DictReader(out.open(encoding="utf-8-sig")))) == 50
    assert not _postgres_for(tmp_path / "data" / "pgdata")  # stopped with the run


def test_token_commands(tmp_path: Path, pg_server_dsn) -> None:
    env = _env(CHUNKMATCH_DATA_DIR=str(tmp_path / "data"))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CHUNKMATCH, "token", *args], env=env, capture_output=True, text=True, timeout=120
        )

    created = cli("create", "--owner", "carol")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("cm_") and len(token) >= 40
    listing = cli("list")
    assert "carol" in listing.stdout and token not in listing.stdout
    prefix = token[:9]
    assert prefix in listing.stdout
    assert cli("revoke", prefix).returncode == 0
    assert "revoked" in cli("list").stdout
    assert cli("revoke", prefix).returncode == 1  # already revoked


def test_run_reports_a_clear_error(tmp_path: Path, live_server) -> None:
    _write_csv(tmp_path / "a.csv", [{"id": "1", "label": "x"}])
    result = subprocess.run(
        [
            CHUNKMATCH,
            "run",
            "--items",
            str(tmp_path / "a.csv"),
            "--catalog",
            str(tmp_path / "a.csv"),
            "--server",
            live_server.url,
        ],
        env=_env(CHUNKMATCH_TOKEN=live_server.token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no 'name' or 'title' column" in result.stderr and "--item-fields" in result.stderr
