#!/usr/bin/env bash
# Re-resolve requirements.lock from pyproject.toml's ranges: one universal lock for Python 3.11-3.13
# (markers pick per Python and platform). Run after changing a dependency; commit both files.
#   ./scripts/lock.sh                      keep the locked versions that still satisfy the ranges
#   ./scripts/lock.sh --upgrade            newest releases within the ranges
#   ./scripts/lock.sh --upgrade-package X  newest X only
# torch: on Linux x86_64 with CPython 3.11 the lock takes the CPU build 2.13.0+cpu that lies in /opt/wheels on
# these machines (PyPI's 2.13.0 for Linux is the CUDA build, several GB); on 3.12 and 3.13 there is no such file,
# so the lock takes PyPI's build with its nvidia-* libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-$(command -v uv || echo .venv/bin/uv)}
[ -x "$UV" ] || { echo "lock: uv not found; run scripts/setup.sh first (it installs uv into .venv) or set UV=" >&2; exit 1; }
find_links=()
[ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)
exec "$UV" pip compile pyproject.toml --extra dev --universal "${find_links[@]}" \
    --custom-compile-command "scripts/lock.sh" -o requirements.lock "$@"
