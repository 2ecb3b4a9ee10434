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


_FILTER = RedactSecrets()


def install_log_redaction() -> None:
    """Attach the filter to the loggers that print request URLs (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
