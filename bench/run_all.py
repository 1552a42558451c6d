"""Run every bench of ``bench/`` and merge their results into one JSON object.

A bench is any ``bench/*_bench.py`` (the convention of ``bench/_sizes.py``): it takes ``--json``
(one JSON object as its last stdout line) and ``--quick`` / ``--full``. Each runs in its own
process; a bench that fails, or that does not follow the convention, is recorded with its exit
code and the end of its stderr, and the others still run. Every number in a bench's result whose
key names a ratio (``ratio``, ``speedup``, ``*_ratio_*``, ``*_vs_*``) is also listed under
``"ratios"`` as ``"<bench>.<key>"``, so two runs compare at a glance.

    .venv/bin/python bench/run_all.py --quick --json        # every bench, each under a minute
    .venv/bin/python bench/run_all.py --full --json         # the sizes of issue 13
    .venv/bin/python bench/run_all.py --quick overhead      # only the named benches
    .venv/bin/python bench/run_all.py backfill -- --months 3  # arguments after -- go to the benches
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RATIO_KEY = re.compile(r"(^|_)(ratio|speedup)($|_)|_vs_")


def benches(folder: Path = HERE) -> dict[str, Path]:
    """Name (the file name without ``_bench.py``) -> script, of every bench in ``folder``."""
    return {p.name.removesuffix("_bench.py"): p for p in sorted(folder.glob("*_bench.py"))}


def run(script: Path, args: list[str], timeout_s: float | None = None) -> dict[str, Any]:
    """One bench's JSON result (with ``bench_wall_s``), or ``{"error": ...}`` when it fails."""
    env = dict(os.environ)
    repo = str(HERE.parent)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    try:
        out = subprocess.run(
            [sys.executable, str(script), "--json", *args],
            env=env,
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as e:
        return {"error": f"timed out after {timeout_s} s", "stderr": str(e.stderr or "")[-2000:]}
    wall = round(time.perf_counter() - t0, 1)
    lines = out.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        return {"error": f"exit {out.returncode}", "stderr": out.stderr[-2000:], "bench_wall_s": wall}
    if out.returncode:
        result["exit_code"] = out.returncode
    result["bench_wall_s"] = wall
    return result


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Every numeric value whose key names a ratio, nested keys joined by dots."""
    found: dict[str, float] = {}

    def walk(prefix: str, value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v, str(k))
        elif isinstance(value, int | float) and not isinstance(value, bool) and RATIO_KEY.search(key):
            found[prefix] = value

    for name, result in results.items():
        walk(name, result, "")
    return found


def main(argv: list[str] | None = None, folder: Path = HERE) -> int:
    """Run the selected benches of ``folder`` (all by default); print the merged JSON; exit 1 if one failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    known = benches(folder)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help=f"benches to run (default: all of {sorted(known)})")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="each bench at a size that takes under a minute")
    size.add_argument("--full", action="store_true", help="each bench at the sizes of issue 13")
    p.add_argument("--json", action="store_true", help="print only the JSON object (the default prints it too)")
    p.add_argument("--timeout", type=float, default=None, help="seconds each bench may take")
    args = p.parse_args(argv)
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        raise SystemExit(f"unknown bench {unknown}; the benches are {sorted(known)}")
    flags = ["--quick"] if args.quick else ["--full"] if args.full else []
    t0 = time.perf_counter()
    results = {name: run(known[name], [*flags, *extra], args.timeout) for name in (args.names or known)}
    merged: dict[str, Any] = {
        "size": "quick" if args.quick else "full" if args.full else "default",
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "ratios": ratios(results),
        "failed": sorted(n for n, r in results.items() if "error" in r or r.get("exit_code")),
        "benches": results,
    }
    print(json.dumps(merged, indent=None if args.json else 2))
    return 1 if merged["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
