"""Transport retries of the API clients: urllib3's ``Retry`` (idempotent calls answered 429, 500,
502, 503 or 504; ``Retry-After`` honoured, else backoff with jitter), bounded in total time."""

from __future__ import annotations

import email.utils
import logging
import time
from typing import Any, Self

from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

log = logging.getLogger("flask_spark")


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (seconds or an HTTP date), or None if unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class BoundedRetry(Retry):
    """``Retry`` that stops before a wait would take a call past ``max_time`` seconds; reads
    ``Retry-After`` in fractional seconds, an unreadable one as absent."""

    #: per call: when its first retryable answer came (monotonic), and the next attempt's wait
    started: float | None = None
    next_wait = 0.0

    def __init__(self, *args: Any, max_time: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_time = max_time

    def new(self, **kw: Any) -> Self:
        return super().new(max_time=self.max_time, **kw)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        now = time.monotonic()
        counted = super().increment(method, url, response, error, _pool, _stacktrace)
        counted.started = started = self.started if self.started is not None else now
        wait = retry_after_seconds(response.headers.get("Retry-After")) if response else None
        if wait is None:
            wait = counted.get_backoff_time()
        if now - started + wait > self.max_time:
            raise MaxRetryError(_pool, url or "", ResponseError("retry time budget spent"))
        status = response.status if response is not None else None
        log.info("API answered HTTP %s; retry %d in %.2fs", status, len(counted.history), wait)
        counted.next_wait = wait
        return counted

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        time.sleep(self.next_wait)


def api_retry(max_retries: int, backoff: float, max_time: float) -> BoundedRetry:
    """The API pool's policy: retry *n* waits ``Retry-After``, else at most ``backoff * 2**(n-1)``;
    connection errors are not retried; the last answer is returned when retries run out."""
    return BoundedRetry(
        total=None,
        status=max_retries,
        connect=0,
        read=False,
        other=0,
        # A write that failed may have been applied; Spark's 1550 comes as 429 or 503.
        allowed_methods=("GET", "HEAD", "OPTIONS"),
        status_forcelist=(429, 500, 502, 503, 504),
        backoff_factor=backoff / 2,
        backoff_jitter=backoff,
        raise_on_status=False,
        max_time=max_time,
    )
