#!/usr/bin/env bash
# Set up, then run the test suite (no internet needed; servers start on 127.0.0.1).
# PYTHON= and VENV= pick the interpreter and the venv, as for scripts/setup.sh (PYTHON=3.13 VENV=.venv-3.13).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
VENV=$VENV bash scripts/setup.sh
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
