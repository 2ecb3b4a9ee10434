"""Every error family, from real sandbox answers, mapped to typed exceptions under SparkError.

Retries are switched off here (``retry_max=0``) so that each case is exactly one call;
retrying is the subject of ``test_refresh.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_spark import (
    RateLimited,
    ResourceNotFound,
    SparkAPIError,
    SparkError,
    spark_api,
    spark_login_required,
)
from flask_spark.core.api import SparkAPI, StaticTokens
from flask_spark.core.errors import (
    APIUnavailable,
    AuthenticationError,
    FilterError,
    InvalidRequest,
    MethodRefused,
    PermissionDenied,
    TokenExpired,
    UnexpectedResponse,
    WriteConflict,
)
from flask_spark.core.http import pooled_session
from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import FlowClient, job_handle


@pytest.fixture
def options() -> dict[str, Any]:
    return {"retry_max": 0}


@pytest.fixture
def app(config: dict[str, Any]) -> Flask:
    app = make_app(config, retry_max=0)

    @app.get("/search")
    @spark_login_required
    def search() -> dict[str, Any]:
        from flask import request

        # No try/except: the extension must turn the API error into a clean answer.
        page = spark_api.get("listings", params={"_filter": request.args["q"]})
        return {"count": len(page)}

    return app


@pytest.fixture
def user(flow: FlowClient) -> FlowClient:
    assert flow.login("/").status_code == 302
    return flow


@pytest.fixture
def api(user: FlowClient, app: Flask) -> SparkAPI:
    sid = user.cookie()
    assert sid is not None
    return app.extensions["spark"].api_for_job(job_handle(app, sid), app)


def expect(
    error: type[SparkAPIError], call: Any, status: int, code: int | str | None
) -> SparkAPIError:
    """Run ``call``; assert it raised exactly ``error`` with ``status`` and ``code``."""
    with pytest.raises(SparkAPIError) as caught:
        call()
    exc = caught.value
    assert type(exc) is error, f"{type(exc).__name__}: {exc.message}"
    assert isinstance(exc, SparkError)
    assert (exc.status, exc.code) == (status, code)
    assert exc.message
    assert "Traceback" not in exc.message
    assert isinstance(exc.errors, list)
    assert isinstance(exc.sparkql_errors, list)
    return exc


def test_every_family_is_a_spark_error() -> None:
    for family in (
        AuthenticationError,
        TokenExpired,
        PermissionDenied,
        ResourceNotFound,
        InvalidRequest,
        FilterError,
        MethodRefused,
        WriteConflict,
        RateLimited,
        APIUnavailable,
        UnexpectedResponse,
    ):
        assert issubclass(family, SparkAPIError)
        assert issubclass(family, SparkError)
    assert issubclass(FilterError, InvalidRequest)
    assert issubclass(TokenExpired, AuthenticationError)


# -- real answers of the sandbox ---------------------------------------------------------------


def test_invalid_token_is_authentication_error(app: Flask, sandbox: SandboxServer) -> None:
    client = SparkAPI(
        base_url=app.config["SPARK_API_BASE_URL"],
        user_agent="tests",
        tokens=StaticTokens("not-a-real-token"),
        http=pooled_session(),
    )
    exc = expect(AuthenticationError, lambda: client.get("my/account"), status=401, code=1000)
    assert exc.message == "Invalid session token"
    assert "not-a-real-token" not in str(exc)


def test_expired_static_token_is_token_expired(
    api: SparkAPI, app: Flask, user: FlowClient, sandbox: SandboxServer
) -> None:
    token = app.extensions["spark.state"].tokens.load(user.cookie()).access_token
    sandbox.expire_tokens()
    client = SparkAPI(
        base_url=app.config["SPARK_API_BASE_URL"],
        user_agent="tests",
        tokens=StaticTokens(token),  # cannot refresh: the 1020 is final
        http=pooled_session(),
    )
    expect(TokenExpired, lambda: client.get("my/account"), status=401, code=1020)


def test_unknown_listing_is_not_found(api: SparkAPI) -> None:
    exc = expect(ResourceNotFound, lambda: api.get("listings/20990101000000000000000000"), 404, 404)
    assert exc.message == "Listing not found"


def test_invalid_parameter_is_bad_request(api: SparkAPI) -> None:
    exc = expect(InvalidRequest, lambda: api.get("listings", params={"_limit": 500}), 400, 1053)
    assert "_limit" in exc.message


def test_bad_filter_is_filter_error_with_sparkql_errors(api: SparkAPI) -> None:
    exc = expect(
        FilterError,
        lambda: api.get("listings", params={"_filter": "Bogus Eq 'x'"}),
        status=400,
        code=1040,
    )
    assert exc.sparkql_errors == [
        {"Token": "Bogus", "Status": "Dropped", "Message": "Unknown field Bogus"}
    ]
    assert isinstance(exc.body, dict)
    assert exc.body["D"]["Success"] is False


@pytest.mark.parametrize(
    ("spark_filter", "code"),
    [("ListPrice Eq 'cheap'", 2001), ("ListPrice Bt 1.0", 2002)],
)
def test_filter_value_errors_2000_range(api: SparkAPI, spark_filter: str, code: int) -> None:
    exc = expect(
        FilterError, lambda: api.get("listings", params={"_filter": spark_filter}), 400, code
    )
    assert exc.sparkql_errors
    assert exc.sparkql_errors[0]["Status"] == "Dropped"


def test_forbidden_method_is_method_not_allowed(api: SparkAPI, sandbox: SandboxServer) -> None:
    before = sandbox.counters()["api_calls"]
    exc = expect(MethodRefused, lambda: api.post("listings", json={"x": 1}), 405, 1018)
    assert "POST" in exc.message
    assert sandbox.counters()["api_calls"] == before + 1


def test_stale_write_is_conflict(api: SparkAPI) -> None:
    contact = api.get("contacts", params={"_limit": 1}).first()
    stale = {"Company": "Nope", "ModificationTimestamp": "2000-01-01T00:00:00Z"}
    exc = expect(WriteConflict, lambda: api.put(f"contacts/{contact['Id']}", json=stale), 409, 1055)
    assert "modified" in exc.message
    assert api.get(f"contacts/{contact['Id']}").first()["Company"] != "Nope"


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limit_1550_with_429_or_503(
    api: SparkAPI, sandbox: SandboxServer, status: int
) -> None:
    sandbox.faults(rate_limit_next=1, rate_limit_status=status, retry_after="7")
    exc = expect(RateLimited, lambda: api.get("listings"), status=status, code=1550)
    assert isinstance(exc, RateLimited)
    assert exc.retry_after == 7.0
    assert exc.message == "Over rate limit"


def test_non_json_body_is_unexpected_response_not_keyerror(
    api: SparkAPI, sandbox: SandboxServer
) -> None:
    sandbox.faults(non_json_next=2)
    exc = expect(UnexpectedResponse, lambda: api.get("listings"), status=502, code=None)
    assert "not in its documented format" in exc.message
    assert "502 Bad Gateway" in exc.body  # an excerpt kept for debugging
    exc = expect(UnexpectedResponse, lambda: api.reso.get("Property"), status=502, code=None)
    assert exc.message.startswith("The RESO Web API answered HTTP 502")


# -- forced errors: the codes the sandbox has no natural way to produce --------------------------


@pytest.mark.parametrize(
    ("status", "code", "family"),
    [
        (401, 1010, AuthenticationError),
        (403, 1015, PermissionDenied),
        (403, 1500, PermissionDenied),
        (403, 1013, PermissionDenied),
        (400, 1016, InvalidRequest),
        (400, 1050, InvalidRequest),
        (400, 1041, FilterError),
        (400, 2500, FilterError),
        (405, 1017, MethodRefused),
        (409, 1055, WriteConflict),
        (503, 1510, APIUnavailable),
        (503, 1516, APIUnavailable),
        (500, 9999, APIUnavailable),
        (418, 9999, SparkAPIError),
    ],
)
def test_forced_spark_errors_map_by_code_then_status(
    api: SparkAPI, sandbox: SandboxServer, status: int, code: int, family: type[SparkAPIError]
) -> None:
    details = [{"Field": "Example", "Message": "why"}]
    sandbox.faults(
        force_error_next=1,
        force_error={
            "status": status,
            "code": code,
            "message": f"forced {code}",
            "errors": details,
            "sparkql_errors": [{"Token": "t"}],
            "envelope": "D",
        },
    )
    exc = expect(family, lambda: api.get("listings"), status=status, code=code)
    assert exc.message == f"forced {code}"
    assert exc.errors == details
    assert exc.sparkql_errors == [{"Token": "t"}]


# -- RESO Web API: OData-shaped errors ---------------------------------------------------------


def test_reso_bad_filter_in_odata_shape(api: SparkAPI) -> None:
    exc = expect(
        FilterError,
        lambda: api.reso.get("Property", params={"$filter": "Bogus eq 1"}),
        status=400,
        code=1040,  # OData sends the code as a string; it is normalised
    )
    assert exc.body == {"error": {"code": "1040", "message": exc.message}}


def test_reso_unknown_key_is_not_found(api: SparkAPI) -> None:
    expect(ResourceNotFound, lambda: api.reso.get("Property('nope')"), status=404, code=404)


def test_reso_write_is_method_not_allowed(api: SparkAPI) -> None:
    expect(MethodRefused, lambda: api.reso.request("POST", "Property", json={}), 405, code=1018)


@pytest.mark.parametrize(
    ("status", "code", "family"),
    [(403, 1500, PermissionDenied), (503, 1510, APIUnavailable), (429, 1550, RateLimited)],
)
def test_reso_forced_odata_errors(
    api: SparkAPI, sandbox: SandboxServer, status: int, code: int, family: type[SparkAPIError]
) -> None:
    sandbox.faults(force_error_next=1, force_error={"status": status, "code": code})
    exc = expect(family, lambda: api.reso.get("Property"), status=status, code=code)
    assert exc.body == {"error": {"code": str(code), "message": "Forced error"}}


def test_reso_token_errors_come_in_odata_form(app: Flask, sandbox: SandboxServer) -> None:
    client = SparkAPI(
        base_url=app.config["SPARK_API_BASE_URL"],
        user_agent="tests",
        tokens=StaticTokens("nope"),
        http=pooled_session(),
    )
    from flask_spark.core.api import ResoAPI

    reso = ResoAPI(
        base_url=app.config["SPARK_RESO_BASE_URL"],
        user_agent="tests",
        tokens=client.tokens,
        http=client.http,
    )
    exc = expect(AuthenticationError, lambda: reso.get("Property"), status=401, code=1000)
    assert exc.body == {"error": {"code": "1000", "message": "Invalid session token"}}


# -- an unhandled API error inside a view -------------------------------------------------------


def test_unhandled_api_error_in_a_view_is_clean_json(user: FlowClient) -> None:
    response = user.get("/search?q=Bogus%20Eq%20'x'", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json == {"error": "1040", "message": "Unknown field Bogus"}
    assert response.headers["Cache-Control"] == "no-store"


def test_unhandled_api_error_in_a_view_is_a_clean_page(user: FlowClient) -> None:
    response = user.get("/search?q=Bogus%20Eq%20'x'", headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Unknown field Bogus" in page
    assert "Traceback" not in page
    assert "File &#34;" not in page
    assert 'File "' not in page


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"rate_limit_next": 1, "rate_limit_status": 503}, 503),
        ({"rate_limit_next": 1, "rate_limit_status": 429}, 429),
        ({"non_json_next": 1}, 502),
        ({"force_error_next": 1, "force_error": {"status": 403, "code": 1500}}, 403),
    ],
)
def test_unhandled_api_error_keeps_its_status(
    user: FlowClient, app: Flask, sandbox: SandboxServer, fault: dict[str, Any], status: int
) -> None:
    token = app.extensions["spark.state"].tokens.load(user.cookie()).access_token
    sandbox.faults(**fault)
    response = user.get("/search?q=City%20Eq%20'Ames'", headers={"Accept": "application/json"})
    assert response.status_code == status
    assert set(response.json) == {"error", "message"}
    assert token not in response.get_data(as_text=True)
    # The user is still signed in: an API error does not end the session.
    assert user.get("/dashboard").status_code == 200
