#!/usr/bin/env bash
# Create a virtual environment and install the locked dependencies (requirements.lock) and the project into it,
# editable (idempotent: a second call with nothing changed returns at once).
#
#   ./scripts/setup.sh                       .venv on the first supported Python found (3.11, then 3.12, 3.13)
#   PYTHON=3.13 ./scripts/setup.sh           that version (or a path/command: PYTHON=python3.13, /usr/bin/python3.12)
#   VENV=.venv-3.13 PYTHON=3.13 ./scripts/setup.sh   into another folder (.ci/run does this)
#
# Supported: CPython 3.11, 3.12 and 3.13 (pyproject.toml's requires-python). Interpreters are looked for on PATH
# (python3.X) and under pyenv ($(pyenv root)/versions/3.X.*). 3.11 comes first because the CPU build of torch
# lies on these machines' disk for 3.11 only; 3.12 and 3.13 download PyPI's CUDA build (about 3 GB, once).
# Installs with uv (PyPI package `uv`; pip puts it once into ~/.cache/earth-memory); INSTALLER=pip uses pip alone
# (slower).
set -euo pipefail
cd "$(dirname "$0")/.."
SUPPORTED="3.11 3.12 3.13"
VENV=${VENV:-.venv}
LOCK=requirements.lock
UV_VERSION=0.13.9 # keep equal to the lock's uv

say() { echo "setup: $*" >&2; }

# The "X.Y" version of an interpreter, or nothing when it does not run (a pyenv shim of a version not selected).
py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }

# The first interpreter of version $1 that runs: the one on PATH, else pyenv's.
candidates() {
    local v=$1 c
    for c in "python$v" $( (command -v pyenv >/dev/null && ls -d "$(pyenv root)/versions/$v".*/bin/"python$v") 2>/dev/null); do
        command -v "$c" >/dev/null 2>&1 || continue
        if [ "$(py_version "$c")" = "$v" ]; then command -v "$c" && return 0; fi
    done
    return 0
}

found=""
for v in $SUPPORTED; do
    c=$(candidates "$v")
    [ -n "$c" ] && found="$found $v=$c"
done
say "supported Pythons found:${found:- none}"

if [ -n "${PYTHON:-}" ]; then
    case "$PYTHON" in
    3.1[0-9]) PY=$(candidates "$PYTHON") ;;
    python3.1[0-9]) PY=$(candidates "${PYTHON#python}") ;;
    *) PY=$(command -v "$PYTHON" 2>/dev/null || true) ;;
    esac
    [ -n "$PY" ] || { say "PYTHON=$PYTHON: no such interpreter that runs; pick one of:${found:- (none found)}"; exit 2; }
elif [ -x "$VENV/bin/python" ]; then
    PY="$VENV/bin/python" # keep the venv's own Python
else
    PY=$(echo $found | cut -d' ' -f1)
    PY=${PY#*=}
    [ -n "$PY" ] || { say "no Python 3.11, 3.12 or 3.13 found on PATH or under pyenv; install one and set PYTHON="; exit 2; }
fi
ver=$(py_version "$PY")
case " $SUPPORTED " in
*" $ver "*) ;;
*) say "$PY is Python ${ver:-?}; supported: $SUPPORTED (set PYTHON= to one of:${found:- none found})"; exit 2 ;;
esac

if [ -x "$VENV/bin/python" ] && [ "$(py_version "$VENV/bin/python")" != "$ver" ]; then
    say "$VENV has Python $(py_version "$VENV/bin/python"), $ver was asked for: recreating $VENV"
    rm -rf "$VENV"
fi
# "bytecode": venvs made before the install compiled bytecode are synced (and compiled) once more.
stamp_of() { echo "$1/.installed-$({ cat "$LOCK" pyproject.toml; echo bytecode; } | sha1sum | cut -c1-12)"; }
if [ -x "$VENV/bin/python" ] && [ -f "$(stamp_of "$VENV")" ]; then
    say "using Python $ver ($(readlink -f "$VENV/bin/python")) in $VENV: up to date with $LOCK"
    exit 0
fi
start=$SECONDS

# uv itself: the venv's own (the lock has it), else one kept in the user's cache (made once with pip), so a
# fresh venv needs neither ensurepip nor pip.
uv_bin() {
    if [ -x "$VENV/bin/uv" ]; then echo "$VENV/bin/uv"; return 0; fi
    local tool="${XDG_CACHE_HOME:-$HOME/.cache}/earth-memory/uv-$UV_VERSION"
    if [ ! -x "$tool/bin/uv" ]; then
        rm -rf "$tool" && "$PY" -m venv "$tool" && "$tool/bin/python" -m pip install -q "uv==$UV_VERSION" >&2 || return 1
    fi
    echo "$tool/bin/uv"
}
# The CPU build of torch for 3.11 (torch==2.13.0+cpu in the lock) lies in /opt/wheels on these machines.
find_links=()
[ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)
if [ "${INSTALLER:-uv}" = uv ] && UV=$(uv_bin); then
    [ -x "$VENV/bin/python" ] || "$UV" venv -q --python "$PY" "$VENV"
    say "using Python $ver ($(readlink -f "$VENV/bin/python")) in $VENV"
    # sync: the venv holds exactly the lock (a dependency dropped from the lock is uninstalled).
    # --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (as in many
    # containers and on these machines) Python never does either, so every process compiled what it imported
    # anew: `import pytorch_lightning` took 13.2 s instead of 5.0 s, in each Dagster step process and test worker.
    "$UV" pip sync -q --compile-bytecode --python "$VENV/bin/python" "${find_links[@]}" "$LOCK"
    "$UV" pip install -q --python "$VENV/bin/python" --no-deps -e .
else
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    say "using Python $ver ($(readlink -f "$VENV/bin/python")) in $VENV; installing with pip"
    "$VENV/bin/python" -m pip install -q -r "$LOCK"
    "$VENV/bin/python" -m pip install -q --no-deps -e .
fi
# The project's own packages too (an editable install is not compiled; the .pyc files are git-ignored).
"$VENV/bin/python" -m compileall -q -j 0 memories assets resources dagster_project >/dev/null
stamp=$(stamp_of "$VENV")
rm -f "$VENV"/.installed-* && touch "$stamp"
say "installed $LOCK into $VENV in $((SECONDS - start)) s"
