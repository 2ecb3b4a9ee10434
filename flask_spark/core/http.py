"""HTTP plumbing shared by the OpenID client and the API clients: one pooled-session builder,
one per-process holder (sockets must not cross a fork) and one loopback test."""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable
from http.cookiejar import DefaultCookiePolicy
from typing import Generic, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

T = TypeVar("T")


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost``, ``*.localhost``, ``127.0.0.0/8`` and ``::1`` (RFC 8252 §7.3)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pooled_adapter(pool_size: int = 32, retries: Retry | int = 0) -> HTTPAdapter:
    """A keep-alive connection pool; transport ``retries`` are the caller's choice (none by
    default)."""
    return HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=retries)


def pooled_session(adapter: HTTPAdapter | None = None) -> requests.Session:
    """A ``requests.Session`` on ``adapter`` (a new pool by default) that keeps no cookies.

    One user's cookies must never reach another user's call. The proxy settings of the
    environment are read once here, not on every call (``requests`` would otherwise scan the
    environment per request).
    """
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = adapter or pooled_adapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class ProcessLocal(Generic[T]):
    """A value built once per process: a forked worker builds its own (pools hold sockets)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pid = -1
        self._value: T | None = None

    def get(self) -> T:
        """The value for this process, built on first use."""
        if self._pid != os.getpid() or self._value is None:
            with self._lock:
                if self._pid != os.getpid() or self._value is None:
                    self._value = self._factory()
                    self._pid = os.getpid()
        return self._value
