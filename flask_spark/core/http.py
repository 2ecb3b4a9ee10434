"""HTTP plumbing shared by the OpenID client and the API clients: one pooled-session builder,
one per-process holder (sockets must not cross a fork) and one loopback test."""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Iterable
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Generic, TypeVar
from urllib.parse import urljoin, urlsplit

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
    adapter: HTTPAdapter | None = None,
    *,
    hosts: Iterable[str] = (),
    session: requests.Session | None = None,
) -> requests.Session:
    """``session`` (a new one by default) on ``adapter`` (a new pool by default), keeping no
    cookies and following redirects only within one origin.

    One user's cookies must never reach another user's call, and a redirect must not carry a
    code, a token or the client secret to another host (see :func:`same_origin_redirects`).
    The session is never closed by its users: closing it would close the shared pool. Given
    ``hosts`` (the base URLs it will call), the environment's settings for them are read once,
    here: the proxy of each (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...) and the CA bundle
    (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``); the session then stops scanning the
    environment on every call (about 1 ms each), and ignores ``~/.netrc`` (the calls carry
    their own bearer token). Any other host is reached directly.
    """
    session = session or requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.hooks["response"].append(same_origin_redirects)
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


class RedirectRefused(requests.RequestException):
    """The server redirected to another origin, or from HTTPS to HTTP: not followed."""


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def same_origin_redirects(response: requests.Response, *args: Any, **kwargs: Any) -> Any:
    """A response hook: a redirect to another origin (scheme, host, port) is refused with
    :class:`RedirectRefused` before anything is sent there."""
    if response.is_redirect:
        target = urljoin(response.url, response.headers["Location"])
        try:
            same = _origin(target) == _origin(response.url)
        except ValueError:  # an unreadable port
            same = False
        if not same:
            response.close()
            raise RedirectRefused(
                f"The server at {urlsplit(response.url).netloc} redirected to another origin.",
                response=response,
            )
    return response


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
