#!/usr/bin/env bash
# Serve the memory over HTTP (the query server) on http://127.0.0.1:8765; docs at /docs.
#   MEMORIES_API_TOKEN=... ./scripts/serve.sh [--host 0.0.0.0] [--port 8765] [--catalog PATH] [--root URI]
# A host other than 127.0.0.1 needs MEMORIES_API_TOKEN; clients send "Authorization: Bearer $MEMORIES_API_TOKEN".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m memories.server "$@"
