from __future__ import annotations

import subprocess
import sys

import matching


def test_public_names_are_exported() -> None:
    for name in ("CatalogIndex", "MatchResult", "DEFAULT_THRESHOLD", "compose_text"):
        assert name in matching.__all__
    for name in matching.__all__:
        assert hasattr(matching, name), name
    assert 0.0 < matching.DEFAULT_THRESHOLD < 1.0


def test_matching_imports_no_service_or_drivers() -> None:
    code = (
        "import matching, sys; "
        "bad = [m for m in sys.modules if m.startswith(('service', 'asyncpg', 'starlette'))]; "
        "assert not bad, bad"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_match_result_is_frozen() -> None:
    result = matching.MatchResult("a", "b", 0.9, "fuzzy", "name similarity 0.90")
    try:
        result.score = 1.0  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("MatchResult must be immutable")
    assert result.score == 0.9
