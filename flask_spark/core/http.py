"""HTTP plumbing shared by the OpenID client and the API clients: one pooled-session builder,
one per-process holder (sockets must not cross a fork) and one loopback test."""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Sequence
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
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pooled_adapter(retries: Retry | int = 0) -> HTTPAdapter:
    """A keep-alive pool (32 connections per host); no transport retries unless given."""
    return HTTPAdapter(pool_connections=8, pool_maxsize=32, max_retries=retries)


def pooled_session(
    adapter: HTTPAdapter | None = None,
    *,
    hosts: Sequence[str] = (),
    session: requests.Session | None = None,
) -> requests.Session:
    """``session`` (or a new one) on ``adapter``: no cookies kept, no redirect to another origin;
    never closed by its users (it shares the pool). The proxies and CA bundle of ``hosts`` are read
    from the environment once, not per call; ``~/.netrc`` is ignored."""
    session = session or requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.hooks["response"].append(same_origin_redirects)
    adapter = adapter or pooled_adapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if hosts:
        session.proxies = {}
        for url in hosts:
            parts, proxy = urlsplit(url), select_proxy(url, get_environ_proxies(url))
            if proxy and parts.hostname:  # as requests keys it: "https://sparkapi.com"
                session.proxies[f"{parts.scheme}://{parts.hostname}"] = proxy
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        session.trust_env = False
    return session


class RedirectRefused(requests.RequestException):
    """A redirect to another origin (or from HTTPS to HTTP), not followed."""


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def same_origin_redirects(response: requests.Response, *args: Any, **kwargs: Any) -> Any:
    """A response hook: :class:`RedirectRefused` for a redirect to another scheme, host or port."""
    if response.is_redirect:
        target = urljoin(response.url, response.headers["Location"])
        try:
            same = _origin(target) == _origin(response.url)
        except ValueError:  # an unreadable port
            same = False
        if not same:
            response.close()
            raise RedirectRefused(f"{urlsplit(response.url).netloc} redirected elsewhere.")
    return response


class ProcessLocal(Generic[T]):
    """A value built once per process: a forked worker builds its own (pools hold sockets)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pid = -1
        self._value: T | None = None

    def get(self) -> T:
        with self._lock:
            if self._pid != os.getpid() or self._value is None:
                self._value, self._pid = self._factory(), os.getpid()
            return self._value
