"""Keep secrets out of log records that libraries and servers write.

urllib3 logs request paths at DEBUG, and Spark puts the access token in one
(``DELETE /v1/oauth2/token/<token>``). Access logs (werkzeug's, gunicorn's) print the request
line, and the sign-in callback's carries the one-time authorization ``code`` and the ``state``.
:class:`RedactSecrets` masks tokens in any path, and ``code`` and ``state`` in the URLs of
flask-spark's own routes only: an app's ``/search?state=CA&code=94110`` is logged as it is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, MutableMapping
from typing import Any

# Spark puts the access token in a URL path (DELETE /v1/oauth2/token/<token>).
_TOKEN_IN_PATH = re.compile(r"(oauth2/token/)[^\s\"'?&/]+")
# A path and its query string, in a request line or a URL.
_URL = re.compile(r"(/[^\s\"'?#]*)\?([^\s\"'#]*)")
# The callback's one-time code and state, in a query string.
_CALLBACK_PARAMS = re.compile(r"((?:^|[&;])(?:code|state)=)[^&;#\s\"']*")
#: The paths of flask-spark's routes in every app of this process (``install_log_redaction``).
ROUTES: set[str] = set()
#: The loggers that print request URLs; :func:`install_log_redaction` filters them.
LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "werkzeug",
    "gunicorn.access",
    "flask_spark",
)


def _is_route(path: str, routes: Collection[str]) -> bool:
    """True for one of ``routes``, also under a mount prefix (``SCRIPT_NAME``)."""
    return any(path.endswith(route) for route in routes)


def _mask_query(query: str) -> str:
    return _CALLBACK_PARAMS.sub(r"\1[redacted]", query)


def redact(text: str, routes: Collection[str] = ROUTES) -> str:
    """``text`` with token path segments masked, and ``code``/``state`` values in the URLs of
    ``routes``."""
    text = _TOKEN_IN_PATH.sub(r"\1[redacted]", text)
    return _URL.sub(
        lambda url: f"{url[1]}?{_mask_query(url[2])}" if _is_route(url[1], routes) else url[0],
        text,
    )


class RedactSecrets(logging.Filter):
    """A logging filter that masks tokens in URL paths and the callback's ``code``/``state``.

    flask-spark installs it on the ``LOGGERS`` (werkzeug's, gunicorn's access log, urllib3's
    and its own). For a handler of your own (or a logging config), add it yourself::

        from flask_spark.core.redaction import RedactSecrets
        logging.getLogger("gunicorn.access").addFilter(RedactSecrets())
    """

    def __init__(self, routes: Collection[str] = ROUTES) -> None:
        super().__init__()
        self.routes = routes

    def _redacted(self, value: Any) -> Any:
        return redact(value, self.routes) if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, self.routes)
        args: Any = record.args
        if isinstance(args, tuple):
            record.args = tuple(self._redacted(a) for a in args)
        elif isinstance(args, MutableMapping):  # gunicorn's atoms: keep its mapping type
            path = args.get("U")  # the path of the query string %(q)s
            ours = isinstance(path, str) and _is_route(path, self.routes)
            for key in list(args):
                value = args[key]
                if key == "q" and ours and isinstance(value, str):
                    args[key] = _mask_query(value)
                else:
                    args[key] = self._redacted(value)
        return True


#: Control characters (C0, DEL, C1) and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (``\\n``, ``\\x1b``): printable, one line."""
    return _CONTROLS.sub(lambda found: found.group().encode("unicode_escape").decode(), text)


class OneLine(logging.Filter):
    """A logging filter that escapes control characters in a record's arguments.

    flask-spark's own log lines carry values from requests (an ``Origin``) and from the
    provider (error codes, messages); a newline there would forge a line, an ANSI escape
    rewrite the terminal of whoever reads the log (OWASP ASVS 16.4.1). The format strings are
    flask-spark's and stay as they are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple):
            record.args = tuple(one_line(a) if isinstance(a, str) else a for a in args)
        return True


_FILTER = RedactSecrets()
_ONE_LINE = OneLine()


def install_log_redaction(routes: Iterable[str]) -> None:
    """Attach the filters to the loggers that print request URLs (idempotent), masking
    ``code`` and ``state`` on ``routes`` too, and keep flask-spark's own records to one
    printable line each."""
    ROUTES.update(routes)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    own = logging.getLogger("flask_spark")
    if _ONE_LINE not in own.filters:
        own.addFilter(_ONE_LINE)
