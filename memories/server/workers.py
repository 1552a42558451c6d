"""Several server worker processes: uvicorn's supervisor and its workers, over one memory.

``MemoriesServer(workers=4, max_memory_gb=16)`` serves from four processes that share
the listening socket (uvicorn's ``workers``: a supervisor starts them, restarts one
that dies, and stops them all on SIGTERM). A worker cannot be handed Python objects,
so it rebuilds the server from a description in the environment variable
:data:`OPTIONS_ENV` (catalog location, storage root, limits, its memory budget):
:func:`memories.server.app.app_from_env` is uvicorn's app factory. The token stays in ``MEMORIES_API_TOKEN``
and a PostgreSQL catalog's URL in ``MEMORIES_CATALOG_URL``, never on a command line.

- :meth:`WorkerPool.serve` runs the supervisor in this process (the command line,
  ``python -m memories.server --workers 4``);
- :meth:`WorkerPool.start` runs it in a process of its own (``python -m
  memories.server.workers``, its own session so a stop reaches every worker) and
  returns once ``/health`` answers; :meth:`WorkerPool.stop` sends SIGTERM and waits.

Each worker's memory budget is ``max_memory_gb / workers``
(:class:`~memories.server.admission.MemoryBudget`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from memories.errors import ConfigError

__all__ = ["OPTIONS_ENV", "WorkerPool"]

logger = logging.getLogger(__name__)

OPTIONS_ENV = "MEMORIES_SERVER_OPTIONS"
"""Environment variable with the JSON description a worker builds its app from."""


class WorkerPool:
    """uvicorn worker processes over one memory (see the module docstring).

    Args:
        memory: None (the memory configured when the pool is made) or a
            :class:`~memories.memory.temporal.TemporalMemory`.
        host: address to listen on.
        workers: worker processes (>= 2).
        max_memory_gb: the server's memory, GiB, shared among the workers; None: no budget.
        max_body_bytes: largest request body, bytes.
        max_queued_analyses: analyses that may wait in each worker while one runs.

    Raises:
        ConfigError: a memory the workers cannot open by its location (a view factory, a view as of a time).
    """

    def __init__(
        self,
        memory: Any,
        *,
        host: str,
        workers: int,
        max_memory_gb: float | None,
        max_body_bytes: int,
        max_queued_analyses: int,
    ) -> None:
        from memories.memory.temporal import TemporalMemory
        from memories.server.admission import worker_memory_bytes

        self.host, self.workers = host, workers
        catalog_url = None
        spec: dict[str, Any] = {"catalog": None, "root": None, "s3_endpoint_url": None}
        if memory is None:  # the memory configured now (update_config in this process is not seen by workers)
            memory = TemporalMemory()
        if isinstance(memory, TemporalMemory):
            if memory.catalog.path is not None:
                spec["catalog"] = str(memory.catalog.path)
            else:
                catalog_url = memory.catalog.url  # to the workers through the environment only
            spec["root"], spec["s3_endpoint_url"] = memory.root.uri, memory.root.s3_endpoint_url
        else:
            raise ConfigError(
                f"MemoriesServer(workers={workers}) needs the configured memory or a TemporalMemory, which its "
                f"worker processes open by location; got {type(memory).__name__}: use workers=1 for it"
            )
        spec.update(
            max_body_bytes=max_body_bytes,
            max_queued_analyses=max_queued_analyses,
            max_memory_bytes=worker_memory_bytes(max_memory_gb, workers),
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower(),
        )
        self.spec = spec
        self._catalog_url = catalog_url
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    # -- in this process (the command line) ------------------------------------------------------
    def serve(self, port: int) -> None:
        """Run uvicorn's supervisor and its workers here until SIGINT / SIGTERM."""
        os.environ[OPTIONS_ENV] = json.dumps(self.spec)
        if self._catalog_url:
            from memories.memory.catalog import CATALOG_URL_ENV

            os.environ[CATALOG_URL_ENV] = self._catalog_url
        _supervise(self.host, port, self.workers)

    # -- in a process of its own (tests, notebooks) ------------------------------------------------
    def start(self, port: int, token: str | None, *, timeout: float = 60.0) -> int:
        """Start the supervisor in its own process; returns the port once ``/health`` answers.

        Raises:
            ConfigError: the processes did not come up within ``timeout`` s (the log's end says why).
        """
        if self._process is not None:
            raise ConfigError("this server is started already; stop() it first")
        port = port or _free_port(self.host)
        env = {**os.environ, OPTIONS_ENV: json.dumps(self.spec)}
        from memories.server.guard import TOKEN_ENV

        if token:
            env[TOKEN_ENV] = token
        if self._catalog_url:
            from memories.memory.catalog import CATALOG_URL_ENV

            env[CATALOG_URL_ENV] = self._catalog_url
        fd, log = tempfile.mkstemp(prefix="memories-server-", suffix=".log")
        self._log = Path(log)
        cmd = [sys.executable, "-m", "memories.server.workers", self.host, str(port), str(self.workers)]
        with os.fdopen(fd, "wb") as out:
            self._process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _answers(self.host, port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = self._log.read_text(errors="replace")[-2000:]
                self.stop(5.0)
                raise ConfigError(
                    f"the server's {self.workers} worker processes did not answer on {self.host}:{port} within "
                    f"{timeout:.0f} s; their log ends:\n{tail}"
                )
            time.sleep(0.1)
        return port

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the supervisor (it stops its workers), SIGKILL to the whole group after ``timeout`` s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("server processes did not stop within %.0f s; killing them", timeout)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # any worker left behind
        except ProcessLookupError:
            pass
        process.wait(5)
        if self._log is not None:
            self._log.unlink(missing_ok=True)

    @property
    def pid(self) -> int | None:
        """Process id of the supervisor started by :meth:`start`."""
        return self._process.pid if self._process is not None else None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _answers(host: str, port: int) -> bool:
    import httpx

    shown = f"[{host}]" if ":" in host else host
    try:
        return httpx.get(f"http://{shown}:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str] | None = None) -> int:
    """``python -m memories.server.workers HOST PORT WORKERS``: the supervisor :meth:`WorkerPool.start` runs."""
    host, port, workers = argv if argv is not None else sys.argv[1:4]
    _supervise(host, int(port), int(workers))
    return 0


def _supervise(host: str, port: int, workers: int) -> None:
    """uvicorn's supervisor of ``workers`` processes, each building its app with ``app.app_from_env``."""
    import uvicorn

    uvicorn.run(
        "memories.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    sys.exit(main())
