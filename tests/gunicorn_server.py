"""gunicorn for tests and benchmarks: real worker processes on a loopback socket bound here.

The socket is bound before gunicorn starts (``--bind fd://N``), so the port is known and free;
each worker's app factory calls :func:`mark_worker_ready` once it is built, so that
:meth:`GunicornServer.start` can wait for every worker. The wait ends on those events or on
gunicorn's exit; its deadline only stops a hung start (a loaded 2-core machine running the
suite with ``-n 8`` can take a minute to import the workers).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
READY_ENV = "GUNICORN_READY_DIR"


def mark_worker_ready() -> None:
    """Call at the end of an app factory that gunicorn runs: this worker is up."""
    ready = os.environ.get(READY_ENV)
    if ready:
        (Path(ready) / str(os.getpid())).touch()


class GunicornServer:
    """``gunicorn <app>`` with ``workers`` processes, started and stopped by the caller."""

    def __init__(
        self,
        app: str,
        *,
        workers: int,
        env: dict[str, str],
        args: Sequence[str] = (),
        cwd: Path = ROOT,
        backlog: int = 256,
    ) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(backlog)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.app = app.replace("{url}", self.url)
        self.workers = workers
        self.env = env
        self.args = list(args)
        self.cwd = cwd
        self.dir = Path(tempfile.mkdtemp(prefix="flask-spark-gunicorn-"))
        self.ready_dir = self.dir / "ready"
        self.ready_dir.mkdir()
        self.log = self.dir / "gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def worker_pids(self) -> set[int]:
        """The pids of the workers that have built their app."""
        return {int(p.name) for p in self.ready_dir.iterdir()}

    def start(self, health: str, timeout: float = 600.0) -> GunicornServer:
        """Start gunicorn and wait until every worker is up and ``health`` answers."""
        fd = self.listener.fileno()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"fd://{fd}",
                    "--workers",
                    str(self.workers),
                    "--graceful-timeout",
                    "5",
                    "--log-level",
                    "warning",
                    *self.args,
                    self.app,
                ],
                cwd=self.cwd,
                env={**os.environ, **self.env, READY_ENV: str(self.ready_dir)},
                pass_fds=(fd,),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text()
                self.stop()
                raise RuntimeError(f"gunicorn exited:\n{output}")
            if len(self.worker_pids) >= self.workers:
                try:
                    if requests.get(self.url + health, timeout=2).status_code < 500:
                        return self
                except requests.RequestException:
                    pass
            time.sleep(0.05)  # readiness polling of a child process
        output = self.log.read_text()  # before stop() removes it
        self.stop()
        raise RuntimeError(f"gunicorn not ready in {timeout:.0f}s:\n{output}")

    def stop(self) -> None:
        """Stop gunicorn (idempotent) and remove its files."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)
