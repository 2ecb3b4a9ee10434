"""Where an API client may send the user's token: to URLs under the configured API base, only.

A path is built only from characters that every URL parser reads alike; a reference that a
parser could read differently (control characters, whitespace, backslashes, userinfo, another
scheme, encoded separators, dot or empty segments) raises
:class:`~flask_spark.core.errors.UnsafeURL` before any request. An absolute URL (an
``@odata.nextLink``) must name the base's scheme, host and port and stay under its path, read
both ways ``requests`` will read it.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import urlsplit

from requests import PreparedRequest
from requests.exceptions import RequestException
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .errors import UnsafeURL

#: Longest reference accepted (a path or a next link, query included).
MAX_URL = 8192
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Characters a path may hold as they are: RFC 3986 unreserved and sub-delims, less ``;``.
_PATH = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,=/]|%[0-9A-Fa-f]{2})*")
#: Escapes refused in a path: separators (``. / \ ? #``), ``%`` itself (double encoding), controls.
_BAD_ESCAPE = re.compile(r"%(?:2[eEfF]|5[cC]|3[fF]|23|25|[01][0-9A-Fa-f]|7[fF])")
_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?]*)(.*)", re.DOTALL)
_AUTHORITY = re.compile(r"([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?")


class Origin(NamedTuple):
    """Scheme, host and port of a URL (host lower case, port made explicit)."""

    scheme: str
    host: str
    port: int


def _origin(scheme: str, host: str | None, port: int | None) -> Origin:
    scheme = scheme.lower()
    return Origin(scheme, (host or "").strip("[]").lower(), port or _DEFAULT_PORTS.get(scheme, 0))


class APIBase:
    """A configured API base URL (``https://sparkapi.com/v1/``), split once."""

    def __init__(self, url: str) -> None:
        url = url if url.endswith("/") else url + "/"
        parts = urlsplit(url)
        self.url = url
        #: ``scheme://host[:port]`` exactly as configured: every URL is built on it
        self.prefix = f"{parts.scheme}://{parts.netloc}"
        self.origin = _origin(parts.scheme, parts.hostname, parts.port)
        self.path = parts.path or "/"

    def resolve(self, ref: str, *, link: bool = False) -> str:
        """The absolute URL of ``ref`` under this base; :class:`UnsafeURL` when ambiguous.

        ``ref`` is a path relative to the base (a leading ``/`` is ignored: ``"/listings"`` is
        ``"listings"``) or an absolute URL on the base's origin. With ``link`` it is a link the
        API sent: a ``/``-rooted one is then read from the origin, as RFC 3986 does, and a
        refusal is the API's fault (status 502), not the caller's.
        """
        status = 502 if link else 400
        if not isinstance(ref, str):
            raise UnsafeURL("it is not a string", status=status)
        if len(ref) > MAX_URL:
            raise UnsafeURL("it is too long", status=status)
        if not ref.isprintable():
            raise UnsafeURL("it holds control characters or whitespace", status=status)
        if "\\" in ref or "#" in ref:
            raise UnsafeURL("it holds a backslash or a fragment", status=status)
        target, mark, query = ref.partition("?")
        absolute = _ABSOLUTE.fullmatch(target)
        if absolute:
            path = self._same_origin_path(absolute, status)
        elif target.startswith("//"):
            raise UnsafeURL("it names another host (scheme-relative)", status=status)
        elif link and target.startswith("/"):
            path = target
        else:
            path = self.path + target.removeprefix("/")
        self._check_path(path, status)
        return self._verified(self.prefix + path + mark + query, status)

    def _same_origin_path(self, absolute: re.Match[str], status: int) -> str:
        scheme, authority, rest = absolute.groups()
        found = _AUTHORITY.fullmatch(authority)
        if found is None:
            raise UnsafeURL("its host part is not a plain host[:port]", status=status)
        host, port = found.groups()
        if _origin(scheme, host, int(port) if port else None) != self.origin:
            raise UnsafeURL("it is not on the configured API host", status=status)
        return rest or "/"

    def _check_path(self, path: str, status: int) -> None:
        if not _PATH.fullmatch(path) or _BAD_ESCAPE.search(path):
            raise UnsafeURL(
                "its path holds characters or escapes that parsers read differently",
                status=status,
            )
        segments = path.split("/")[1:]
        if any(s in (".", "..") for s in segments):
            raise UnsafeURL("its path has dot segments", status=status)
        if "" in segments[:-1]:
            raise UnsafeURL("its path has empty segments", status=status)
        if not path.startswith(self.path):
            raise UnsafeURL(f"its path is not under {self.path}", status=status)

    def _verified(self, url: str, status: int) -> str:
        """``url`` as requests will send it, after both of its parsers agree it is ours."""
        prepared = PreparedRequest()
        try:
            prepared.prepare_url(url, None)
            sent = str(prepared.url)
            u3, std = parse_url(sent), urlsplit(sent)
            readings = (
                (_origin(u3.scheme or "", u3.host, u3.port), u3.auth, u3.path or ""),
                (_origin(std.scheme, std.hostname, std.port), std.username, std.path),
            )
        except (RequestException, LocationParseError, ValueError):
            raise UnsafeURL("it cannot be parsed", status=status) from None
        for origin, auth, path in readings:
            if origin != self.origin or auth is not None or not path.startswith(self.path):
                raise UnsafeURL("it is read as another host or path", status=status)
        return sent
