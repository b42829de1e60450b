"""The JS client's own test suite (``node --test tests/js/``) against a live server."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_TIMEOUT_SECONDS = 300.0


async def test_js_client_suite_passes_against_live_server(live_server) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JS client tests need Node 20+")
    process = await asyncio.create_subprocess_exec(
        node,
        "--test",
        "tests/js/",
        cwd=ROOT,
        env={
            **os.environ,
            "CHUNKMATCH_URL": live_server.url,
            "CHUNKMATCH_TOKEN": live_server.token,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        raw, _ = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        raw, _ = await process.communicate()
        pytest.fail(
            f"node --test did not finish in {NODE_TIMEOUT_SECONDS:.0f} s:\n"
            + raw.decode(errors="replace")
        )
    output = raw.decode(errors="replace")
    assert process.returncode == 0, f"node --test exited {process.returncode}:\n{output}"
    passed = re.search(r"^# pass (\d+)$", output, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, f"no JS test passed:\n{output}"
    assert "# SKIP" not in output, f"JS tests were skipped despite CHUNKMATCH_URL:\n{output}"
