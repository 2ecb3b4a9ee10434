"""Keep secrets out of log records that libraries and servers write.

urllib3 logs request paths at DEBUG, and Spark puts the access token in one
(``DELETE /v1/oauth2/token/<token>``). Access logs (werkzeug's, gunicorn's) print the request
line, and the sign-in callback's carries the one-time authorization ``code`` and the ``state``.
:class:`RedactSecrets` masks both in a record's message and arguments, whether the arguments
are a tuple (werkzeug, urllib3) or a mapping of atoms (gunicorn's access log).
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

# Spark puts the access token in a URL path (DELETE /v1/oauth2/token/<token>).
_TOKEN_IN_PATH = re.compile(r"(oauth2/token/)[^\s\"'?&/]+")
# The callback's one-time code and state, in a URL or a bare query string (gunicorn's %(q)s).
_CALLBACK_PARAMS = re.compile(r"((?:^|[?&;])(?:code|state)=)[^&;#\s\"']*")
#: The loggers that print request URLs; :func:`install_log_redaction` filters them.
LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "werkzeug",
    "gunicorn.access",
    "flask_spark",
)


def redact(text: str) -> str:
    """``text`` with token path segments and callback ``code``/``state`` values masked."""
    text = _TOKEN_IN_PATH.sub(r"\1[redacted]", text)
    return _CALLBACK_PARAMS.sub(r"\1[redacted]", text)


def _redacted(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """A logging filter that masks tokens in URL paths and the callback's ``code``/``state``.

    flask-spark installs it on the ``LOGGERS`` (werkzeug's, gunicorn's access log, urllib3's
    and its own). For a handler of your own (or a logging config), add it yourself::

        from flask_spark.core.redaction import RedactSecrets
        logging.getLogger("gunicorn.access").addFilter(RedactSecrets())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args: Any = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redacted(a) for a in args)
        elif isinstance(args, MutableMapping):  # gunicorn's atoms: keep its mapping type
            for key in list(args):
                args[key] = _redacted(args[key])
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


def install_log_redaction() -> None:
    """Attach the filters to the loggers that print request URLs (idempotent), and keep
    flask-spark's own records to one printable line each."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    own = logging.getLogger("flask_spark")
    if _ONE_LINE not in own.filters:
        own.addFilter(_ONE_LINE)
