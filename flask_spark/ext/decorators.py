"""``@spark_login_required``: protect a view, reading the session only (no decryption)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from flask import after_this_request, current_app, request, session
from werkzeug.wrappers import Response

from .context import current_state, is_logged_in
from .responses import store_unavailable

#: Methods that pass without a sign-in, as in Flask-Login: a CORS preflight carries no cookie.
EXEMPT_METHODS = frozenset({"OPTIONS"})

F = TypeVar("F", bound=Callable[..., Any])


@overload
def spark_login_required(func: F) -> F: ...


@overload
def spark_login_required(func: None = None) -> Callable[[F], F]: ...


def spark_login_required(func: F | None = None) -> F | Callable[[F], F]:
    """Require a signed-in Flexmls user; works bare (``@spark_login_required``) or called.

    Without a session, HTML requests are redirected to sign-in with ``next``; requests that
    prefer JSON get ``401 {"error": "login_required", "login_url": ...}``. Replace that answer
    with :meth:`SparkAuth.unauthorized_handler`. ``OPTIONS`` (CORS preflights) pass, as with
    Flask-Login; a session store that cannot be reached gives a 503, never a sign-out.

    The view's answer carries ``Cache-Control: no-store`` (unless the view set its own
    ``Cache-Control``; ``SparkAuth(app, no_store_protected=False)`` turns this off): a
    signed-in page must not come back from a cache, or with the Back button, after sign-out.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.method in EXEMPT_METHODS:
                return current_app.ensure_sync(view)(*args, **kwargs)
            if getattr(session, "store_unavailable", False):
                return store_unavailable()
            if not is_logged_in():
                return current_app.extensions["spark"].unauthorized()
            if current_state().config.no_store_protected:
                after_this_request(_no_store)
            return current_app.ensure_sync(view)(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    if func is not None:
        return decorate(func)
    return decorate


def _no_store(response: Response) -> Response:
    """``Cache-Control: no-store``, unless the view chose its own caching."""
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response
