"""A real STAC API over the sample world: ``rustac serve`` on 127.0.0.1.

rustac keeps the items in memory and answers ``/search`` with ``bbox``,
``datetime``, ``ids`` and ``collections`` (not ``query`` or ``filter``), which is
what the pipeline asks of a catalogue. It starts in a fraction of a second.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

from memories.errors import ConfigError, DataSourceError
from memories.sample.world import SampleWorld

STARTUP_TIMEOUT_S = 30.0
"""Seconds to wait for the server to answer before giving up."""


class StacServer:
    """``rustac serve`` over a collection and its items, as a context manager.

    Args:
        source: a ``SampleWorld``, the root folder of one, or the paths of the
            STAC files to load (a collection JSON and an items FeatureCollection).
        host: address to listen on.
        port: TCP port; None picks a free one.

    Example::

        with StacServer(world) as server:
            Client.open(server.url).search(collections=["sentinel-2-l2a"], bbox=...)
    """

    def __init__(
        self,
        source: SampleWorld | str | Path | Sequence[str | Path],
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.hrefs = _hrefs(source)
        self.host = host
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Root of the STAC API, e.g. ``http://127.0.0.1:54321``."""
        if self.port is None:
            raise DataSourceError("the STAC server has no port yet; call start() or use it in a `with` block")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> StacServer:
        """Start the server and wait until every collection it serves answers (at most 30 s).

        The collections are those of the files served (``served_collections``):
        a Landsat catalog is waited for as ``/collections/landsat-c2-l2``, the
        sample world as ``/collections/sentinel-2-l2a``.

        Raises:
            DataSourceError: a file is not STAC JSON, rustac is missing, exited, or
                did not answer in time; the message carries its stderr.
        """
        if self.running:
            return self
        collections = served_collections(self.hrefs)  # before the process starts: a bad file leaves nothing running
        if self.port is None:
            self.port = free_port(self.host)
        probes = [f"{self.url}/collections/{quote(c, safe='')}" for c in collections] or [f"{self.url}/collections"]
        self._stderr = tempfile.TemporaryFile()
        command = [rustac_executable(), "serve", "--addr", f"{self.host}:{self.port}", *map(str, self.hrefs)]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
        self._process = process
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                error = self._read_stderr()
                self.stop()
                raise DataSourceError(
                    f"`{' '.join(command)}` exited with code {process.returncode}: {error or '(no output)'}; "
                    "check that the STAC files exist and that the port is free"
                )
            probes = [probe for probe in probes if not _answers(probe)]
            if not probes:
                return self
            if time.monotonic() > deadline:
                error = self._read_stderr()
                self.stop()
                raise DataSourceError(
                    f"the STAC server at {self.url} did not answer {probes} within {STARTUP_TIMEOUT_S:.0f} s; "
                    f"its stderr: {error or '(empty)'}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> StacServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"StacServer({self.host}:{self.port}, {state}, {len(self.hrefs)} files)"

    def _read_stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:]


def rustac_executable() -> str:
    """The ``rustac`` command: next to the running Python (its virtualenv), else on PATH.

    Raises:
        ConfigError: it is in neither place.
    """
    beside = Path(sys.executable).parent / ("rustac.exe" if sys.platform == "win32" else "rustac")
    if beside.exists():
        return str(beside)
    found = shutil.which("rustac")
    if found:
        return found
    raise ConfigError(
        f"the rustac command is neither next to {sys.executable} nor on PATH; "
        "install it with `pip install rustac` in this environment"
    )


def served_collections(paths: Sequence[Path]) -> list[str]:
    """The ids of the collections ``rustac serve`` makes of these files, in order of first mention.

    A collection file gives its ``id``; an item or a FeatureCollection (JSON) or
    newline-delimited items (``.ndjson``) give their items' ``collection``, which
    rustac serves even when no file defines it. Other formats (stac-geoparquet)
    give none: the server is then waited for at ``/collections``.

    Raises:
        DataSourceError: a JSON file does not parse (names it).
    """
    ids: dict[str, None] = {}
    for path in paths:
        suffix = path.suffix.lower()
        if suffix not in (".json", ".geojson", ".ndjson"):
            continue
        try:
            text = path.read_text()
            lines = text.splitlines() if suffix == ".ndjson" else [text]
            docs = [json.loads(line) for line in lines if line.strip()]
        except (OSError, ValueError) as e:
            raise DataSourceError(f"cannot serve {path}: it is not STAC JSON ({e}); fix or regenerate the file") from e
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            if doc.get("type") == "Collection" and doc.get("id"):
                ids[str(doc["id"])] = None
            features = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
            for feature in features or []:
                if isinstance(feature, dict) and feature.get("type") == "Feature" and feature.get("collection"):
                    ids[str(feature["collection"])] = None
    return list(ids)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _hrefs(source: SampleWorld | str | Path | Sequence[str | Path]) -> list[Path]:
    """The STAC files to serve, checked to exist."""
    if isinstance(source, SampleWorld):
        paths = [source.collection_path, source.items_path]
    elif isinstance(source, (str, Path)) and Path(source).is_dir():
        world = SampleWorld.open(source)
        paths = [world.collection_path, world.items_path]
    elif isinstance(source, (str, Path)):
        paths = [Path(source)]
    else:
        paths = [Path(p) for p in source]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataSourceError(f"cannot serve {missing}: no such file; generate the sample world first")
    return [p.resolve() for p in paths]


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""An opener that ignores *_proxy variables: the server is on this machine."""


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False
