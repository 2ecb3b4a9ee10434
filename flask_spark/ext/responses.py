"""Error pages or JSON (as the client accepts); headers keeping pages out of caches and frames."""

from __future__ import annotations

import logging

from flask import Response, current_app, jsonify, render_template, request

from ..core.errors import LoginRequired, ProviderError, SparkAPIError, SparkError

log = logging.getLogger("flask_spark")


def wants_json() -> bool:
    """True when the request prefers JSON to HTML (API clients, fetch/XHR)."""
    if request.is_json or request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return True
    return request.accept_mimetypes["application/json"] > request.accept_mimetypes["text/html"]


def error_response(status: int, title: str, message: str, *, code: str) -> Response:
    """A ``status`` answer with a message a user can act on: JSON or ``spark/error.html``."""
    if wants_json():
        response = jsonify(error=code, message=message)
    else:
        page = render_template(
            "spark/error.html", status=status, title=title, message=message, code=code
        )
        response = Response(page, mimetype="text/html")
    response.status_code = status
    return not_framed(no_store(response))


def no_store(response: Response) -> Response:
    """``Cache-Control: no-store``, unless the view chose its own caching."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def not_framed(response: Response) -> Response:
    """No framing by other sites (clickjacking), no type sniffing; the app's own headers kept."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def handle_spark_error(exc: SparkError) -> Response:
    """The answer to an error raised by flask-spark's own code: a clear 4xx or 5xx page/JSON."""
    if isinstance(exc, LoginRequired):
        return current_app.extensions["spark"].unauthorized()  # type: ignore[no-any-return]
    status = exc.status if 400 <= exc.status <= 599 else 500
    upstream = isinstance(exc, SparkAPIError | ProviderError)
    if upstream and status >= 500 and status not in (503, 504):
        status = 502  # the API's or the provider's 5xx: a bad gateway here, not this app's 500
    if status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    titles = {502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout"}
    return error_response(
        status,
        titles.get(status, "Request failed"),
        exc.message or "Something went wrong talking to the Spark Platform.",
        code=str(exc.code) if exc.code is not None else type(exc).__name__,
    )


def store_unavailable(exc: Exception | None = None) -> Response:
    """503: the session store cannot be reached, before or (``exc``) during a request."""
    if exc is not None:
        log.error("Session store unavailable during a request: %s", type(exc).__name__)
    return error_response(
        503,
        "Session store unavailable",
        "We cannot reach our session store right now. Your sign-in is kept; try again soon.",
        code="session_store_unavailable",
    )
