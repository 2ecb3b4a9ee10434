"""flask-spark: "Sign in with Flexmls" for Flask, and the Spark API / RESO Web API on the user's
behalf, with tokens that never leave the server."""

from __future__ import annotations

from .api import ResoAPI, ResoResponse, RetryPolicy, SparkAPI, SparkResponse
from .config import DEFAULTS, SparkConfig
from .decorators import spark_login_required
from .errors import (
    AuthenticationError,
    BadRequest,
    Conflict,
    FilterError,
    IdTokenError,
    LoginError,
    LoginRequired,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
    SessionExpired,
    SessionStoreUnavailable,
    SparkAPIError,
    SparkConfigError,
    SparkError,
    TokenExpired,
    UnexpectedResponse,
)
from .extension import SparkAuth
from .proxies import spark_api, spark_user
from .signals import logged_in, logged_out, login_failed, token_refreshed, tokens_revoked
from .user import AnonymousUser, SparkUser

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULTS",
    "AnonymousUser",
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "FilterError",
    "IdTokenError",
    "LoginError",
    "LoginRequired",
    "MethodNotAllowed",
    "NotFound",
    "PermissionDenied",
    "ProviderError",
    "RateLimited",
    "ResoAPI",
    "ResoResponse",
    "RetryPolicy",
    "ServiceUnavailable",
    "SessionExpired",
    "SessionStoreUnavailable",
    "SparkAPI",
    "SparkAPIError",
    "SparkAuth",
    "SparkConfig",
    "SparkConfigError",
    "SparkError",
    "SparkResponse",
    "SparkUser",
    "TokenExpired",
    "UnexpectedResponse",
    "logged_in",
    "logged_out",
    "login_failed",
    "spark_api",
    "spark_login_required",
    "spark_user",
    "token_refreshed",
    "tokens_revoked",
]
