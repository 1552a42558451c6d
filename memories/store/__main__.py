"""Command line of the product stores: export a product month for GIS tools, list its versions.

    python -m memories.store export PRODUCT TILE MONTH DEST [--format cog|zarr]
        [--snapshot ID | --as-of TIME] [--variables a,b] [--overwrite] [--root URI]
    python -m memories.store versions PRODUCT TILE [--month YYYY-MM] [--root URI]

``export`` writes a Cloud-Optimized GeoTIFF (DEST ``*.tif``) or a plain Zarr v3
store (DEST ``*.zarr``) of one month, as of the newest version, a snapshot id, or a
time (ISO 8601, UTC if no offset); see ``memories.store.export``. ``versions``
lists the snapshots (newest first) with their transaction time and month. The
storage root is the configured one (``memories.config``) unless ``--root`` names
another; the S3 endpoint comes from the configuration, credentials from the environment.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from memories.errors import ConfigError, MemoriesError
from memories.months import parse_instant
from memories.store.paths import StorageRoot


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 on a store or input error)."""
    args = _parser().parse_args(argv)
    try:
        from memories.config import config

        root = StorageRoot(args.root or config.storage.root, config.storage.s3_endpoint_url)
        if args.command == "export":
            from memories.store.export import export_month

            done = export_month(
                root,
                args.product,
                args.tile,
                args.month,
                args.dest,
                format=args.format,
                snapshot=args.snapshot,
                as_of=args.as_of,
                variables=args.variables.split(",") if args.variables else None,
                overwrite=args.overwrite,
            )
            print(f"{done.path}: {done.format}, {done.product} {done.tile} {done.month} at snapshot {done.snapshot_id}")
            print("bands: " + ", ".join(done.bands))
        else:
            from memories.store.raster_versions import raster_versions

            for v in raster_versions(root, root.raster_uri(args.product, args.tile)):
                if args.month is None or v.month == args.month:
                    print(f"{v.snapshot_id}  {v.written_at.isoformat()}  {v.month or '-'}  {v.message}")
    except MemoriesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m memories.store", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write a product month as a COG or a plain Zarr v3 store")
    export.add_argument("product", help="product name, e.g. spectral_indices")
    export.add_argument("tile", help="MGRS tile id, e.g. 33TVM")
    export.add_argument("month", help="YYYY-MM")
    export.add_argument("dest", help="local path: *.tif (COG) or *.zarr (Zarr v3)")
    export.add_argument("--format", choices=["cog", "zarr"], default=None, help="default: from DEST's suffix")
    when = export.add_mutually_exclusive_group()
    when.add_argument("--snapshot", default=None, help="a snapshot id (see `versions`)")
    when.add_argument("--as-of", type=_instant, default=None, help="the version current at this ISO 8601 time")
    export.add_argument("--variables", default=None, help="comma-separated variables (default: all)")
    export.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    export.add_argument("--root", default=None, help="storage root URI (default: the configured one)")
    versions = sub.add_parser("versions", help="list a product's snapshots, newest first")
    versions.add_argument("product")
    versions.add_argument("tile")
    versions.add_argument("--month", default=None, help="only the snapshots that wrote this month")
    versions.add_argument("--root", default=None, help="storage root URI (default: the configured one)")
    return parser


def _instant(text: str) -> datetime:
    """``--as-of``: an ISO 8601 instant, naive ones UTC (``memories.months.parse_instant``)."""
    try:
        return parse_instant(text, "--as-of")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


if __name__ == "__main__":
    sys.exit(main())
