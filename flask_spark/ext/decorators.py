"""``@spark_login_required``: protect a view, reading the session only (no decryption)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from flask import after_this_request, current_app, request, session

from .context import is_logged_in
from .responses import no_store, store_unavailable

F = TypeVar("F", bound=Callable[..., Any])


@overload
def spark_login_required(func: F) -> F: ...


@overload
def spark_login_required(func: None = None) -> Callable[[F], F]: ...


def spark_login_required(func: F | None = None) -> F | Callable[[F], F]:
    """Require a signed-in Flexmls user; works bare (``@spark_login_required``) or called.

    Without a session, HTML requests are redirected to sign-in with ``next``; requests that
    prefer JSON get ``401 {"error": "login_required", "login_url": ...}`` (see
    :meth:`SparkAuth.unauthorized_handler`). ``OPTIONS`` (CORS preflights) pass; an unreachable
    session store gives a 503. The answer is ``no-store`` unless the view set ``Cache-Control``.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.method != "OPTIONS":  # as in Flask-Login: a CORS preflight has no cookie
                if getattr(session, "store_unavailable", False):
                    return store_unavailable()
                if not is_logged_in():
                    return current_app.extensions["spark"].unauthorized()
                after_this_request(no_store)
            return current_app.ensure_sync(view)(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
