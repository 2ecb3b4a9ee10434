"""Everything flask-spark raises derives from :class:`SparkError`; API errors get one class per
family of Spark's numeric codes, so that callers can ``except RateLimited``."""

from __future__ import annotations

from typing import Any


class SparkError(Exception):
    """Root of every flask-spark error; carries an HTTP ``status``, a ``code`` and a ``message``."""

    status: int = 500
    code: int | str | None = None

    def __init__(
        self, message: str = "", *, status: int | None = None, code: int | str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class SparkConfigError(SparkError, RuntimeError):
    """The configuration is missing or invalid; one line per problem, naming what to set."""


class LoginError(SparkError):
    """A sign-in was rejected (``reason`` says why); no session was created, no token stored."""

    status = 400

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, code=reason)
        self.reason = reason


class IdTokenError(LoginError):
    """The id_token (or a logout token) failed validation."""

    def __init__(self, message: str, *, reason: str = "id_token_invalid") -> None:
        super().__init__(message, reason=reason)


class ProviderError(SparkError):
    """The OpenID provider could not be reached, or answered with an OAuth ``error``."""

    status = 502

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=error)
        self.error = error
        self.description = description


class LoginRequired(SparkError):
    """The current request has no signed-in Spark user (or the session has ended)."""

    status = 401
    code = "login_required"


class SessionExpired(LoginRequired):
    """The session ended under the user (lifetime over, refresh refused, logged out elsewhere)."""

    code = "session_expired"


class SessionStoreUnavailable(SparkError):
    """Redis could not be reached; sessions are kept and return when it does."""

    status = 503
    code = "session_store_unavailable"


class SparkAPIError(SparkError):
    """An error answer from the Spark API or the RESO Web API, with its details and body."""

    status = 502

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        errors: list[Any] | None = None,
        sparkql_errors: list[Any] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.errors = errors or []
        self.sparkql_errors = sparkql_errors or []
        self.body = body


class UnsafeURL(SparkAPIError):
    """A URL the API client will not send the user's token to (another host, an ambiguous form,
    a path outside the API base); nothing was sent. 400 for the app's path, 502 for the API's."""

    status = 400

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"Refusing to send the user's token to this URL: {reason}.", status=status)
        self.reason = reason  # never the URL itself, which may hold anything


class AuthenticationError(SparkAPIError):
    """401: the key or the session token was refused (codes 1000, 1010, 1020)."""

    status = 401


class TokenExpired(AuthenticationError):
    """401 + code 1020: the access token expired; refreshed and retried once automatically."""

    code = 1020


class PermissionDenied(SparkAPIError):
    """403: the key, user, IP or service level may not do this (1013, 1015, 1500, ...)."""

    status = 403


class ResourceNotFound(SparkAPIError):
    """404: no such resource."""

    status = 404


class InvalidRequest(SparkAPIError):
    """400: a missing or invalid parameter, bad JSON, no user agent (1016, 1035, 1050...)."""

    status = 400


class FilterError(InvalidRequest):
    """400: the ``_filter`` / ``$filter`` was refused (1040, 1041, 2000-2999)."""


class MethodRefused(SparkAPIError):
    """405: read-only key or method forbidden (1017, 1018)."""

    status = 405


class WriteConflict(SparkAPIError):
    """409: a write conflict (1055)."""

    status = 409


class RateLimited(SparkAPIError):
    """429, or 503 with code 1550: over the rate limit; ``retry_after`` is in seconds if known."""

    status = 429
    code = 1550

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class APIUnavailable(SparkAPIError):
    """503 or another 5xx: the API is down, overloaded or not yet in sync (1510, 1515, 1516...)."""

    status = 503


class UnexpectedResponse(SparkAPIError):
    """The answer was not JSON, or not in the envelope the API documents."""


_CODE_CLASSES: dict[int, type[SparkAPIError]] = {
    **dict.fromkeys((1000, 1010), AuthenticationError),
    1020: TokenExpired,
    **dict.fromkeys((1016, 1035, 1050, 1053), InvalidRequest),
    **dict.fromkeys((1040, 1041), FilterError),
    **dict.fromkeys((1017, 1018), MethodRefused),
    1055: WriteConflict,
    1550: RateLimited,
    **dict.fromkeys((1013, 1015, 1019, 1021, 1030, 1500, 1505), PermissionDenied),
    **dict.fromkeys((1510, 1515, 1516, 1023, 1024), APIUnavailable),
}
_STATUS_CLASSES: dict[int, type[SparkAPIError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: ResourceNotFound,
    405: MethodRefused,
    409: WriteConflict,
    429: RateLimited,
}


def numeric_code(value: object) -> int | None:
    """``value`` as a number when it is a non-negative int or a short string of ASCII digits
    (untrusted: ``int("²")`` fails although ``"²".isdigit()``, and so do thousands of digits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def api_error_class(status: int, code: object) -> type[SparkAPIError]:
    """Pick the error class for an API answer from Spark's code first, then the HTTP status."""
    numeric = numeric_code(code) or 0
    if 2000 <= numeric <= 2999:
        return FilterError
    fallback = APIUnavailable if status >= 500 else SparkAPIError
    return _CODE_CLASSES.get(numeric) or _STATUS_CLASSES.get(status, fallback)
