"""Keep secrets out of logs: the access token in ``/v1/oauth2/token/<token>`` (urllib3 logs it),
and ``code`` and ``state`` in flask-spark's routes (an app's ``/search?state=CA`` is left alone)."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, MutableMapping
from typing import Any

_TOKEN_IN_PATH = re.compile(r"(oauth2/token/)[^\s\"'?&/]+")
# A path and its query string, in a request line or a URL.
_URL = re.compile(r"(/[^\s\"'?#]*)\?([^\s\"'#]*)")
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
    return any(path.endswith(route) for route in routes)  # also under a mount prefix


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
    """A logging filter that masks tokens in URL paths and the ``code``/``state`` of
    flask-spark's routes; installed on the ``LOGGERS``, and usable in a logging config."""

    def filter(self, record: logging.LogRecord) -> bool:
        def masked(value: Any) -> Any:
            return redact(value) if isinstance(value, str) else value

        record.msg = masked(record.msg)
        args: Any = record.args
        if isinstance(args, tuple):
            record.args = tuple(masked(a) for a in args)
        elif isinstance(args, MutableMapping):  # gunicorn's atoms: keep its mapping type
            path = args.get("U")  # the path of the bare query string %(q)s
            for key in list(args):
                args[key] = masked(args[key])
            if isinstance(path, str) and _is_route(path, ROUTES) and "q" in args:
                args["q"] = _mask_query(str(args["q"]))
        return True


#: Control characters (C0, DEL, C1) and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class OneLine(logging.Filter):
    """A logging filter that escapes control characters in a record's arguments: values from
    requests or the provider must not forge a line or rewrite a terminal (OWASP ASVS 16.4.1)."""

    def filter(self, record: logging.LogRecord) -> bool:
        def escaped(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            return _CONTROLS.sub(lambda c: c.group().encode("unicode_escape").decode(), value)

        if isinstance(record.args, tuple):
            record.args = tuple(escaped(a) for a in record.args)
        return True


_FILTER = RedactSecrets()
_ONE_LINE = OneLine()


def install_log_redaction(routes: Iterable[str]) -> None:
    """Filter the ``LOGGERS`` (idempotent), masking ``code`` and ``state`` on ``routes`` too;
    keep flask-spark's own records to one printable line each."""
    ROUTES.update(routes)
    for name in LOGGERS:  # ``addFilter`` adds a filter once
        logging.getLogger(name).addFilter(_FILTER)
    logging.getLogger("flask_spark").addFilter(_ONE_LINE)
