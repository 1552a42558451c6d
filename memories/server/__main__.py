"""Command line of the query server.

    python -m memories.server [--host 127.0.0.1] [--port 8765] [--catalog PATH|URL] [--root URI]
                              [--max-body-bytes 1048576] [--max-queued-analyses 4] [--log-level info]
                              [--workers 1] [--max-memory-gb GIB]

Serves the configured memory until Ctrl-C or SIGTERM (uvicorn shuts down gracefully, then re-raises
the signal, so the exit status says the process ended by it). The catalog is the one the code
location records into: ``$MEMORIES_CATALOG_URL`` (a shared PostgreSQL) when set, else the SQLite
file of ``memories.config``; ``--catalog`` overrides both. A catalog that cannot be reached stops
the command before it listens, with the reason (exit status 2). The bearer token comes from
``MEMORIES_API_TOKEN`` in the environment, never from the command line (it would show in ``ps``);
a host other than loopback is refused without one.
"""

from __future__ import annotations

import argparse
import logging
import sys

from memories.errors import MemoriesError
from memories.logs import configure
from memories.server.admission import DEFAULT_MAX_WAITING
from memories.server.app import DEFAULT_HOST, DEFAULT_PORT, MemoriesServer
from memories.server.guard import DEFAULT_MAX_BODY_BYTES

logger = logging.getLogger("memories.server")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m memories.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--catalog",
        default=None,
        help="memory catalog: SQLite path or postgresql:// URL (default: $MEMORIES_CATALOG_URL, else the config's)",
    )
    parser.add_argument("--root", default=None, help="storage root URI (file:///... or s3://...)")
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body, bytes; 413 beyond (default {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--max-queued-analyses",
        type=int,
        default=DEFAULT_MAX_WAITING,
        help=f"analyses that may wait while one runs; 503 beyond (default {DEFAULT_MAX_WAITING})",
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    parser.add_argument(
        "--max-memory-gb",
        type=float,
        default=None,
        help="memory the server may use, GiB, shared among the workers; an analysis that would exceed it gets 503",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    configure(args.log_level)
    try:
        from memories.config import config
        from memories.memory.catalog import MemoryCatalog, configured_location
        from memories.memory.temporal import TemporalMemory

        catalog = MemoryCatalog.open(args.catalog or configured_location())  # connects: refuses an unreachable one
        memory = TemporalMemory(catalog, args.root, s3_endpoint_url=config.storage.s3_endpoint_url)
        logger.info("memory catalog %s, storage root %s", catalog.display, memory.root.uri)
        server = MemoriesServer(
            memory,
            host=args.host,
            port=args.port,
            max_body_bytes=args.max_body_bytes,
            max_queued_analyses=args.max_queued_analyses,
            workers=args.workers,
            max_memory_gb=args.max_memory_gb,
        )
        server.serve()
    except MemoriesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
