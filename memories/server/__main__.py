"""Command line of the query server.

    python -m memories.server [--host 127.0.0.1] [--port 8765] [--catalog PATH] [--root URI] [--log-level info]

Serves the configured memory (``memories.config``: the catalog and the storage
root) until Ctrl-C or SIGTERM (uvicorn shuts down gracefully, then re-raises
the signal, so the exit status says the process ended by it). The bearer token comes from ``MEMORIES_API_TOKEN``
in the environment, never from the command line (it would show in ``ps``); a
host other than loopback is refused without one.
"""

from __future__ import annotations

import argparse
import sys

from memories.errors import MemoriesError
from memories.logs import configure
from memories.server.app import DEFAULT_HOST, DEFAULT_PORT, MemoriesServer


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m memories.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--catalog", default=None, help="memory catalog: SQLite path or postgresql:// URL")
    parser.add_argument("--root", default=None, help="storage root URI (file:///... or s3://...)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    configure(args.log_level)
    try:
        from memories.config import config
        from memories.memory.temporal import TemporalMemory

        memory = TemporalMemory(args.catalog, args.root, s3_endpoint_url=config.storage.s3_endpoint_url)
        MemoriesServer(memory, host=args.host, port=args.port).serve()
    except MemoriesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
