"""The size convention every bench follows, so ``bench/run_all.py`` can run them all.

A bench is a ``bench/*_bench.py`` script that takes ``--json`` (one JSON object as the last
stdout line) and ``--quick`` / ``--full``: ``--quick`` picks sizes that run in under a minute
on 2 cores, ``--full`` the sizes of the issue the bench answers. Either overrides the bench's
own size arguments; with neither, the bench runs at its defaults.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any


def add_size_flags(parser: argparse.ArgumentParser) -> None:
    """Add the mutually exclusive ``--quick`` and ``--full`` flags."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="sizes that run in under a minute")
    group.add_argument("--full", action="store_true", help="the sizes the issue names")


def apply_size_flags(args: argparse.Namespace, quick: Mapping[str, Any], full: Mapping[str, Any]) -> argparse.Namespace:
    """``args`` with the ``quick`` or ``full`` values (argument dest -> value) set, if that flag was given."""
    chosen = quick if args.quick else full if args.full else {}
    for name, value in chosen.items():
        if not hasattr(args, name):
            raise SystemExit(f"the bench's size preset names --{name.replace('_', '-')}, which it does not take")
        setattr(args, name, value)
    return args
