# Sourced by scripts/serve and scripts/test: make .venv and install the project into it.
# $1: the pip extras to install ("" or "test"). The test extras include the base install.
set -euo pipefail
PYTHON=${PYTHON:-python3}
stamp=".venv/.installed-${1:-base}"
fresh() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ]; }
if ! fresh "$stamp" && ! { [ -z "${1:-}" ] && fresh .venv/.installed-test; }; then
  if [ ! -x .venv/bin/python ]; then
    echo "chunkmatch: creating .venv with $("$PYTHON" --version 2>&1)..."
    "$PYTHON" -m venv .venv
  fi
  echo "chunkmatch: installing chunkmatch${1:+ with its $1 extras} and its dependencies into .venv" \
    "(the first time takes a minute or two)..."
  extras=${1:+[$1]}
  # pip's own lines (one per package collected, then the install) show the progress;
  # the "already satisfied" ones of a re-install are left out
  .venv/bin/python -m pip install --disable-pip-version-check -e ".${extras}" \
    | sed -u '/^Requirement already satisfied/d'
  touch "$stamp"
  echo "chunkmatch: .venv is ready"
fi
