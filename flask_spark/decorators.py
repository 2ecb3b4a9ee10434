"""``@spark_login_required``: protect a view, reading the session only (no decryption)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from flask import current_app

from .extension import SparkAuth, is_logged_in

F = TypeVar("F", bound=Callable[..., Any])


@overload
def spark_login_required(func: F) -> F: ...


@overload
def spark_login_required(func: None = None) -> Callable[[F], F]: ...


def spark_login_required(func: F | None = None) -> F | Callable[[F], F]:
    """Require a signed-in Flexmls user; works bare (``@spark_login_required``) or called.

    Without a session, HTML requests are redirected to sign-in with ``next``; requests that
    prefer JSON get ``401 {"error": "login_required", "login_url": ...}``. Replace that answer
    with :meth:`SparkAuth.unauthorized_handler`.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not is_logged_in():
                ext: SparkAuth = current_app.extensions["spark"]
                return ext.unauthorized()
            return current_app.ensure_sync(view)(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    if func is not None:
        return decorate(func)
    return decorate
