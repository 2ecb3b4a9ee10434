"""Keep tokens out of log records that libraries write (urllib3 logs request paths at DEBUG)."""

from __future__ import annotations

import logging
import re

# Spark puts the access token in a URL path (DELETE /v1/oauth2/token/<token>).
_TOKEN_IN_PATH = re.compile(r"(oauth2/token/)[^\s\"'?&/]+")


class RedactTokens(logging.Filter):
    """Masks token path segments in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_PATH.sub(r"\1[redacted]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_PATH.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


_FILTER = RedactTokens()


def install_log_redaction() -> None:
    """Attach the filter to the loggers that print request URLs (idempotent)."""
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "werkzeug", "flask_spark"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
