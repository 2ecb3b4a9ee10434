"""flask-spark: "Sign in with Flexmls" for Flask, and the Spark API / RESO Web API on the user's
behalf, with tokens that never leave the server. The top level holds what an app needs."""

from __future__ import annotations

from .core.errors import (
    LoginRequired,
    RateLimited,
    ResourceNotFound,
    SparkAPIError,
    SparkError,
)
from .core.user import SparkUser
from .ext.context import spark_api, spark_user
from .ext.decorators import spark_login_required
from .ext.extension import SparkAuth
from .ext.signals import logged_in, logged_out, login_failed, token_refreshed, tokens_revoked

__version__ = "0.1.0.dev0"

__all__ = [
    "LoginRequired",
    "RateLimited",
    "ResourceNotFound",
    "SparkAPIError",
    "SparkAuth",
    "SparkError",
    "SparkUser",
    "logged_in",
    "logged_out",
    "login_failed",
    "spark_api",
    "spark_login_required",
    "spark_user",
    "token_refreshed",
    "tokens_revoked",
]
