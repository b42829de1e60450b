"""The matching helper processes of a real `chunkmatch serve` end with their server, however
it ends: stopped (SIGTERM, as a supervisor or Ctrl+C does) or killed."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.e2e.processes import ServiceProcess


def _helpers(pid: int) -> list[int]:
    """The server's children that are matching helpers (not multiprocessing's tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def _started_helpers(server: ServiceProcess) -> list[int]:
    for _ in range(200):
        helpers = _helpers(server.proc.pid)
        if helpers:
            return helpers
        await asyncio.sleep(0.05)
    raise AssertionError("the server started no helper process")


async def _gone(pid: int, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if not _alive(pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"helper {pid} outlived its server")


async def test_a_stopped_servers_helper_exits_and_the_log_stays_clean(db_dsn) -> None:
    server = ServiceProcess(db_dsn, {"CHUNKMATCH_MATCH_PROCESSES": "1"})
    await asyncio.to_thread(server.start)
    try:
        [helper] = await _started_helpers(server)
        server.proc.send_signal(signal.SIGINT)  # Ctrl+C reaches the helper too: it ignores it
        await asyncio.to_thread(server.proc.wait, 30)
        await _gone(helper)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log and "leaked" not in log, log


async def test_a_killed_servers_helper_exits(db_dsn) -> None:
    server = ServiceProcess(db_dsn, {"CHUNKMATCH_MATCH_PROCESSES": "1"})
    await asyncio.to_thread(server.start)
    try:
        [helper] = await _started_helpers(server)
        server.proc.kill()
        await asyncio.to_thread(server.proc.wait, 30)
        await _gone(helper)
    finally:
        server.stop()
