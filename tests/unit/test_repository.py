"""The clone stays clean: caches the tests write are neither tracked nor shown as new."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHES = [".schemathesis", ".hypothesis", ".pytest_cache", ".ruff_cache", "benchmarks/out"]

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_test_caches_are_not_tracked() -> None:
    tracked = _git("ls-files", "--", *CACHES).stdout.split()
    assert tracked == []


@pytest.mark.parametrize("cache", CACHES)
def test_test_caches_are_ignored(cache: str) -> None:
    assert _git("check-ignore", "-q", f"{cache}/default/cache/manifest.json").returncode == 0
