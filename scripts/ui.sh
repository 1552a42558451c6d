#!/usr/bin/env bash
# Open the Dagster UI (webserver + daemon) over the demo's instance on http://127.0.0.1:3000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.dagster_home}
mkdir -p "$DAGSTER_HOME"
# dagster.yaml and pool slots sized from this machine (MEMORIES_MAX_CONCURRENT_RUNS, MEMORIES_POOL_* override).
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" .venv/bin/python -m dagster_project.instance --home "$DAGSTER_HOME"
exec .venv/bin/dagster dev -h 127.0.0.1 -p "${PORT:-3000}"
