#!/usr/bin/env bash
# The UI tests: each report asset in the Dagster UI (dagster-webserver on 127.0.0.1) and its HTML report,
# driven by headless Chromium (/usr/bin/chromium). Screenshots land in test-artifacts/ui/.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest tests/ui -m ui -s -p no:cacheprovider --durations=5 "$@"
