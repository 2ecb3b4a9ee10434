"""Transport retries of the API clients: urllib3's ``Retry``, bounded in total time.

Idempotent calls (``GET``, ``HEAD``, ``OPTIONS``) answered 429, 500, 502, 503 or 504 are retried
by the connection pool itself, honouring ``Retry-After`` and otherwise backing off
exponentially with jitter. The subclass adds only what ``Retry`` lacks: a budget for all the
waiting of one call (``retry_max_time``), a ``Retry-After`` in fractional seconds, and an
unreadable ``Retry-After`` treated as absent instead of failing the call.
"""

from __future__ import annotations

import email.utils
import logging
import time
from typing import Any, Self

from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

log = logging.getLogger("flask_spark")

#: Only calls that can be repeated safely are retried; a write that failed may have been applied.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Rate limiting (Spark's 1550 comes as 429 or 503) and the server errors worth another try.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
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
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class BoundedRetry(Retry):
    """``Retry`` that stops once the next wait would take one call past ``max_time`` seconds."""

    def __init__(
        self,
        *args: Any,
        max_time: float = 30.0,
        started: float | None = None,
        next_wait: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_time = max_time
        #: when this call's first retryable answer came (monotonic); None before it
        self.started = started
        #: the wait before the next attempt, chosen when the answer was counted
        self.next_wait = next_wait

    def new(self, **kw: Any) -> Self:
        kw.setdefault("max_time", self.max_time)
        kw.setdefault("started", self.started)
        kw.setdefault("next_wait", self.next_wait)
        return super().new(**kw)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        return retry_after_seconds(response.headers.get("Retry-After"))

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
        started = self.started if self.started is not None else now
        wait = self.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = counted.get_backoff_time()
        if now - started + wait > self.max_time:
            raise MaxRetryError(_pool, url or "", ResponseError("retry time budget spent"))
        status = response.status if response is not None else None
        log.info("API answered HTTP %s; retry %d in %.2fs", status, len(counted.history), wait)
        return counted.new(started=started, next_wait=wait)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        time.sleep(self.next_wait)


def api_retry(max_retries: int, backoff: float, max_time: float) -> BoundedRetry:
    """The retry policy of the API clients' connection pool.

    Up to ``max_retries`` retries of an idempotent call on :data:`RETRY_STATUSES`; the wait is
    ``Retry-After`` when given, else urllib3's exponential backoff: none before the first
    retry, then ``backoff * 2**(n-2)`` plus up to ``backoff`` of jitter before retry
    *n*, so retry *n* waits at most ``backoff * 2**(n-1)``. Connection errors are not retried
    here, and the last answer is returned, not raised, when retries run out.
    """
    return BoundedRetry(
        total=None,
        status=max_retries,
        connect=0,
        read=False,
        other=0,
        redirect=0,
        allowed_methods=IDEMPOTENT_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff / 2,
        backoff_jitter=backoff,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
        max_time=max_time,
    )
