#!/usr/bin/env bash
# Set up, then run the whole pipeline over the embedded sample world and leave reports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m dagster_project.demo "$@"
