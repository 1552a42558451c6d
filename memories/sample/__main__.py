"""Command line of the sample world.

    python -m memories.sample generate [--root DIR] [--n-tiles N] [--n-months N]
        [--size-px N] [--start-month YYYY-MM] [--seed S] [--revisit-days N]
    python -m memories.sample serve [--root DIR] [--port 7822] [same size options]

Defaults come from ``memories.config.config.sample``. ``serve`` serves the world
under the root as it is; with size options it first makes sure the world is of
that spec (regenerating it if not), and with no world there it generates the
configured one. It serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from types import FrameType

from memories.config import config
from memories.errors import DataSourceError, MemoriesError
from memories.sample.server import StacServer
from memories.sample.spec import SampleWorldSpec
from memories.sample.world import SampleWorld

DEFAULT_PORT = 7822
SPEC_OPTIONS = ("seed", "n_tiles", "start_month", "n_months", "size_px", "revisit_days")
"""Fields of the spec that have a command-line option of the same name."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        spec = _spec(args)
        if args.command == "generate":
            return _generate(spec, args.root)
        explicit = any(getattr(args, name) is not None for name in SPEC_OPTIONS)
        return _serve(spec if explicit else None, args.root, args.port)
    except MemoriesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _generate(spec: SampleWorldSpec, root: str) -> int:
    from memories.sample.world import generate_world

    started = time.perf_counter()
    world = generate_world(spec, root)
    print(
        f"generated {world.manifest['items']} items on {len(world.tiles)} tiles x {spec.n_months} months "
        f"({spec.size_px} px) under {world.root} in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _serve(spec: SampleWorldSpec | None, root: str, port: int) -> int:
    """Serve the world under ``root``: the one of ``spec`` (generated if needed),
    or with no spec whatever world is there (the configured one if none is)."""
    if spec is None:
        try:
            world = SampleWorld.open(root)
        except DataSourceError:
            world = SampleWorld.ensure(SampleWorldSpec.from_settings(config.sample), root)
    else:
        world = SampleWorld.ensure(spec, root)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with StacServer(world, port=port) as server:
        print(f"serving {world.manifest['items']} items of {world.root} at {server.url} (Ctrl-C stops)", flush=True)
        while not stop.wait(0.5):
            if not server.running:
                print("error: the STAC server exited", file=sys.stderr)
                return 1
    return 0


def _spec(args: argparse.Namespace) -> SampleWorldSpec:
    """The configured spec with the options given on the command line."""
    given = {name: getattr(args, name) for name in SPEC_OPTIONS if getattr(args, name) is not None}
    return SampleWorldSpec(**{**SampleWorldSpec.from_settings(config.sample).to_dict(), **given})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m memories.sample", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("generate", "generate the sample world (replaces cogs/, stac/, gis/, truth/ under the root)"),
        ("serve", "serve the sample world's STAC API, generating it first if needed"),
    ):
        p = commands.add_parser(name, help=help_text)
        p.add_argument("--root", default=config.sample.root, help="folder of the world (default: %(default)s)")
        p.add_argument("--n-tiles", type=int, help=f"tiles, 1-4 (default {config.sample.n_tiles})")
        p.add_argument("--n-months", type=int, help=f"months covered (default {config.sample.n_months})")
        p.add_argument("--size-px", type=int, help=f"pixels per tile side at 10 m (default {config.sample.size_px})")
        p.add_argument("--start-month", help=f"first month, YYYY-MM (default {config.sample.start_month})")
        p.add_argument("--seed", type=int, help=f"random seed (default {config.sample.seed})")
        p.add_argument("--revisit-days", type=int, help=f"days between scenes (default {config.sample.revisit_days})")
        if name == "serve":
            p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default %(default)s)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
