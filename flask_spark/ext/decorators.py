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
    """Require a signed-in Flexmls user (bare or called; CORS preflights pass), else answer as
    :meth:`SparkAuth.unauthorized` (or 503: no session store); ``no-store`` unless the view said."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.method != "OPTIONS":
                if getattr(session, "store_unavailable", False):
                    return store_unavailable()
                if not is_logged_in():
                    return current_app.extensions["spark"].unauthorized()
                after_this_request(no_store)
            return current_app.ensure_sync(view)(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
