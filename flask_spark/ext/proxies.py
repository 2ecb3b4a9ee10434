"""``spark_api`` and ``spark_user``: request-bound proxies, like Flask-Login's ``current_user``."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from werkzeug.local import LocalProxy

from .context import current_api, current_user

if TYPE_CHECKING:
    from ..core.api import SparkAPI
    from ..core.user import AnonymousUser, SparkUser

#: The Spark API client of the signed-in user (``spark_api.reso`` for the RESO Web API).
spark_api: SparkAPI = cast("SparkAPI", LocalProxy(current_api))
#: The signed-in user's identity (id_token claims), or an anonymous user. Never holds tokens.
spark_user: SparkUser | AnonymousUser = cast("SparkUser | AnonymousUser", LocalProxy(current_user))
