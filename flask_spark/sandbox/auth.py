"""Access control for the sandbox's Spark API and RESO Web API views.

``spark_endpoint`` / ``reso_endpoint`` do what sparkapi.com does before a view runs: count the
call, apply injected faults, require ``X-SparkApi-User-Agent`` (1016) and a live bearer token
(1000 / 1020; in the D envelope on the Spark API, in OData form on the RESO API), then expose the
token as ``flask.g.spark_token``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from flask import Response, abort, current_app, g, jsonify, request

from .state import SandboxState

P = ParamSpec("P")
R = TypeVar("R")

#: Header value Spark sends with 401 answers about the bearer token.
WWW_AUTHENTICATE_INVALID = "Bearer realm='Flexmls API', error='invalid_token'"
USER_AGENT_HEADER = "X-SparkApi-User-Agent"
EXTENSION_KEY = "spark_sandbox"

_NON_JSON_BODY = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>502 Bad Gateway</h1><p>The upstream server did not answer.</p></body></html>"
)


class SparkAPIError(Exception):
    """A Spark API failure, rendered as ``{"D": {"Success": false, "Code", "Message", ...}}``."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: list[Any] | None = None,
        headers: dict[str, str] | None = None,
        sparkql_errors: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.sparkql_errors = sparkql_errors

    def to_response(self) -> Response:
        """The D-envelope error response."""
        body: dict[str, Any] = {"Success": False, "Message": self.message, "Code": self.code}
        if self.errors is not None:
            body["Errors"] = self.errors
        if self.sparkql_errors is not None:
            body["SparkQLErrors"] = self.sparkql_errors
        response = jsonify({"D": body})
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


class ODataError(Exception):
    """A RESO Web API failure, rendered as ``{"error": {"code": "...", "message": "..."}}``."""

    def __init__(
        self, status: int, code: int | str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_response(self) -> Response:
        """The OData error response."""
        response = jsonify({"error": {"code": str(self.code), "message": self.message}})
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


@dataclass
class TokenInfo:
    """The bearer token of the current API request, as the views see it."""

    token: str
    member_id: str
    client_id: str
    scope: str
    expires_at: float


def current_state() -> SandboxState:
    """The running sandbox app's state."""
    state: SandboxState = current_app.extensions[EXTENSION_KEY]
    return state


def spark_endpoint(view: Callable[P, R]) -> Callable[P, R]:
    """Guard a Spark API view (``/v1/...``): faults, user agent, bearer token."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _guard(reso=False)
        return view(*args, **kwargs)

    return wrapper


def reso_endpoint(view: Callable[P, R]) -> Callable[P, R]:
    """Guard a RESO Web API view: the same checks, every failure in OData form.

    Production's RESO API answers auth failures as ``401 {"error": {"code", "message"}}``; it is
    not published whether ``WWW-Authenticate`` comes with them, so by default it does not (the
    ``reso_www_authenticate`` fault adds it). A forced error may still ask for the D envelope.
    """

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _guard(reso=True)
        return view(*args, **kwargs)

    return wrapper


def _as_odata(error: SparkAPIError) -> ODataError:
    """A token or user-agent failure as the RESO API answers it."""
    headers = {k: v for k, v in error.headers.items() if k != "WWW-Authenticate"}
    if current_state().faults.reso_www_authenticate and "WWW-Authenticate" in error.headers:
        headers["WWW-Authenticate"] = error.headers["WWW-Authenticate"]
    return ODataError(error.status, error.code, error.message, headers=headers)


def _guard(*, reso: bool) -> None:
    """Run the checks shared by both decorators, raising the error Spark would answer."""
    state = current_state()
    state.count("api_calls")
    if reso:
        state.count("reso_calls")
    delay = state.faults.api_delay
    if delay > 0:
        time.sleep(delay)  # injected latency, to exercise client timeouts
    _apply_fault(state, reso=reso)
    try:
        if not request.headers.get(USER_AGENT_HEADER):
            raise SparkAPIError(400, 1016, f"{USER_AGENT_HEADER} header is required")
        g.spark_token = authenticate_bearer(state)
    except SparkAPIError as error:
        if reso:
            raise _as_odata(error) from None
        raise


def authenticate_bearer(state: SandboxState) -> TokenInfo:
    """Resolve ``Authorization: Bearer`` to a live token or raise Spark's 401 (1000 / 1020)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise SparkAPIError(
            401,
            1000,
            "Invalid session token",
            headers={"WWW-Authenticate": "Bearer realm='Flexmls API'"},
        )
    status, record = state.check_access_token(token)
    if status == "expired":
        raise SparkAPIError(
            401,
            1020,
            "Session token has expired",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE_INVALID},
        )
    if status != "ok" or record is None:
        raise SparkAPIError(
            401,
            1000,
            "Invalid session token",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE_INVALID},
        )
    return TokenInfo(
        token=record.token,
        member_id=record.member_id,
        client_id=record.client_id,
        scope=record.scope,
        expires_at=record.expires_at,
    )


def _apply_fault(state: SandboxState, *, reso: bool) -> None:
    """Raise the next armed per-call fault, if any."""
    taken = state.take_api_fault()
    if taken is None:
        return
    kind, spec = taken
    if kind == "rate_limit":
        raise SparkAPIError(
            int(spec["status"]),
            1550,
            "Over rate limit",
            headers={"Retry-After": str(spec["retry_after"])},
        )
    if kind == "non_json":
        abort(Response(_NON_JSON_BODY, status=502, mimetype="text/html"))
    status = int(spec.get("status", 400))
    code = spec.get("code", 1053)
    message = str(spec.get("message", "Forced error"))
    if reso and spec.get("envelope") != "D":
        raise ODataError(status, code, message)
    raise SparkAPIError(
        status,
        int(code) if str(code).isdigit() else 1053,
        message,
        errors=spec.get("errors"),
        sparkql_errors=spec.get("sparkql_errors"),
    )
