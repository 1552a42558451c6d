"""Run the benches that speak ``--json`` and merge their results into one JSON object.

Each bench runs in its own process with ``--json`` (plus the arguments given here for it);
its last stdout line is its result. A bench that fails is recorded with its exit code and the
end of its stderr, and the others still run.

    .venv/bin/python bench/run_all.py                       # every bench at its defaults
    .venv/bin/python bench/run_all.py backfill --months 3   # one bench, with arguments
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {"backfill": "backfill_bench.py"}
"""Name -> script of every bench with ``--json`` output."""


def run(name: str, args: list[str]) -> dict[str, object]:
    """One bench's JSON result, or ``{"error": ...}`` when it fails."""
    env = dict(os.environ)
    repo = str(HERE.parent)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out = subprocess.run(
        [sys.executable, str(HERE / BENCHES[name]), "--json", *args], env=env, cwd=repo, capture_output=True, text=True
    )
    lines = out.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        return {"error": f"exit {out.returncode}", "stderr": out.stderr[-2000:]}
    if out.returncode:
        result["exit_code"] = out.returncode
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the named bench (or all) and print the merged JSON; exit 1 if one failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in BENCHES:
        selected, extra = [argv[0]], argv[1:]
    elif argv:
        raise SystemExit(f"unknown bench {argv[0]!r}; the benches are {sorted(BENCHES)}")
    else:
        selected, extra = list(BENCHES), []
    results = {name: run(name, extra) for name in selected}
    print(json.dumps(results, indent=2))
    return 1 if any("error" in r or r.get("exit_code") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
