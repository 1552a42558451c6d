#!/usr/bin/env bash
# Set up, then run the test suite (no internet needed; servers start on 127.0.0.1).
# PYTHON= and VENV= pick the interpreter and the venv, as for scripts/setup.sh (PYTHON=3.13 VENV=.venv-3.13).
# TEST_WORKERS= sets the pytest-xdist workers (default 2; 0 runs in this process, as plain pytest does).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
VENV=$VENV bash scripts/setup.sh
WORKERS=${TEST_WORKERS:-2}
parallel=()
# Files are the units of work, and the files that share a session fixture are one unit (tests/conftest.py).
[ "$WORKERS" != 0 ] && parallel=(-n "$WORKERS" --dist loadfile --no-loadscope-reorder)
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${parallel[@]}" "$@"
