"""HTTP plumbing shared by the OpenID client and the API clients: one pooled-session builder,
one per-process holder (sockets must not cross a fork) and one loopback test."""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Iterable
from http.cookiejar import DefaultCookiePolicy
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, select_proxy
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


def pooled_session(
    adapter: HTTPAdapter | None = None, *, hosts: Iterable[str] = ()
) -> requests.Session:
    """A ``requests.Session`` on ``adapter`` (a new pool by default) that keeps no cookies.

    One user's cookies must never reach another user's call. Given ``hosts`` (the base URLs it
    will call), the environment's settings for them are read once, here: the proxy of each
    (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...) and the CA bundle (``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``); the session then stops scanning the environment on every call (about
    1 ms each), and ignores ``~/.netrc`` (the calls carry their own bearer token). Any other
    host is reached directly.
    """
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = adapter or pooled_adapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    hosts = tuple(hosts)
    if hosts:
        session.proxies = environment_proxies(hosts)
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        session.trust_env = False
    return session


def environment_proxies(urls: Iterable[str]) -> dict[str, str]:
    """The environment's proxy for each URL's host (``NO_PROXY`` honoured), as ``requests``
    proxy keys (``"https://sparkapi.com": "http://proxy:3128"``); a host reached directly
    has no key."""
    proxies: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url)
        if not parts.hostname:
            continue
        proxy = select_proxy(url, get_environ_proxies(url))
        if proxy:
            proxies[f"{parts.scheme}://{parts.hostname}"] = proxy
    return proxies


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
