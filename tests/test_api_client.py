"""The Spark API / RESO Web API client: parsing, verbs, paging, headers, use outside a request.

End-to-end tests drive a real sign-in against the sandbox over HTTP and call ``spark_api`` from
protected views; the few unit tests use a fake HTTP session only at the client's edge.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask, request

from flask_spark import (
    ResourceNotFound,
    SparkAPIError,
    SparkAuth,
    spark_api,
    spark_login_required,
    token_refreshed,
)
from flask_spark.core.api import (
    ResoAPI,
    SparkAPI,
    StaticTokens,
    parse_reso,
    parse_spark,
)
from flask_spark.core.errors import LoginRequired, SessionExpired, UnexpectedResponse
from flask_spark.core.http import pooled_session
from flask_spark.sandbox import SandboxServer
from flask_spark.sandbox import listings_data as data

from .conftest import make_app
from .helpers import MEMBER, FlowClient, job_handle

CITY = "Sioux Falls"
CITY_ROWS = [r for r in data.listings() if r["StandardFields"]["City"] == CITY]


# -- fixtures ----------------------------------------------------------------------------------


def add_api_views(app: Flask) -> Flask:
    """Protected views that use ``spark_api`` the way an application would."""

    def body() -> dict[str, Any]:
        return request.get_json(silent=True) or {}

    @app.post("/call")
    @spark_login_required
    def call() -> dict[str, Any]:
        spec = body()
        method, path = spec["method"], spec["path"]
        params, payload = spec.get("params"), spec.get("json")
        if method == "GET":
            page = spark_api.get(path, params=params)
        elif method == "POST":
            page = spark_api.post(path, json=payload, params=params)
        elif method == "PUT":
            page = spark_api.put(path, json=payload, params=params)
        else:
            page = spark_api.delete(path, params=params)
        return {
            "results": page.results,
            "pagination": page.pagination,
            "raw": page.raw,
            "status": page.status,
            "count": len(page),
        }

    @app.post("/paginate")
    @spark_login_required
    def paginate() -> dict[str, Any]:
        spec = body()
        records = list(
            spark_api.paginate(
                spec["path"],
                params=spec.get("params"),
                max_records=spec.get("max_records"),
            )
        )
        return {"ids": [r["Id"] for r in records]}

    @app.post("/reso")
    @spark_login_required
    def reso() -> dict[str, Any]:
        spec = body()
        answer = spark_api.reso.get(spec["path"], params=spec.get("params"))
        return {
            "value": answer.value,
            "count": answer.count,
            "next_link": answer.next_link,
            "raw": answer.raw,
            "len": len(answer),
        }

    @app.post("/reso/paginate")
    @spark_login_required
    def reso_paginate() -> dict[str, Any]:
        spec = body()
        records = list(
            spark_api.reso.paginate(
                spec["path"], params=spec.get("params"), max_records=spec.get("max_records")
            )
        )
        return {"keys": [r["ListingKey"] for r in records]}

    @app.get("/two-calls")
    @spark_login_required
    def two_calls() -> dict[str, Any]:
        account = spark_api.get("my/account").first()
        listings = spark_api.get("listings", params={"_limit": 2})
        return {"account": account["Name"], "listings": len(listings)}

    return app


@pytest.fixture
def app(config: dict[str, Any]) -> Flask:
    return add_api_views(make_app(config))


@pytest.fixture
def user(flow: FlowClient) -> FlowClient:
    """A browser signed in as MEMBER."""
    assert flow.login("/").status_code == 302
    return flow


def api_calls(sandbox: SandboxServer) -> int:
    return sandbox.counters()["api_calls"]


def call(user: FlowClient, method: str, path: str, **spec: Any) -> Any:
    return user.post("/call", json={"method": method, "path": path, **spec})


# -- envelope parsing (unit) -------------------------------------------------------------------


def fake_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    response = requests.Response()
    response.status_code = status
    if isinstance(body, bytes | str):
        response._content = body.encode() if isinstance(body, str) else body
    else:
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
    response.headers.update(headers or {})
    return response


def test_parse_spark_envelope_results_pagination_and_raw() -> None:
    body = {
        "D": {
            "Success": True,
            "Results": [{"Id": "1"}, {"Id": "2"}],
            "Pagination": {"TotalRows": 42, "PageSize": 2, "TotalPages": 21, "CurrentPage": 3},
        }
    }
    page = parse_spark(fake_response(body, 200))
    assert page.results == [{"Id": "1"}, {"Id": "2"}]
    assert page.pagination == {"TotalRows": 42, "PageSize": 2, "TotalPages": 21, "CurrentPage": 3}
    assert page.raw == body
    assert page.status == 200
    assert len(page) == 2
    assert list(page) == page.results
    assert page.first() == {"Id": "1"}

    bare = parse_spark(fake_response({"D": {"Success": True}}))
    assert bare.results == []
    assert bare.pagination is None
    assert bare.first() is None


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", {"Results": []}, [1, 2], {"D": "not an object"}, b""],
    ids=["html", "no-envelope", "list", "envelope-string", "empty"],
)
def test_parse_spark_without_envelope_is_a_clear_error_not_keyerror(body: Any) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        parse_spark(fake_response(body, 200))
    assert caught.value.status == 502
    assert "D envelope" in caught.value.message


def test_parse_spark_success_false_in_a_2xx_is_a_typed_error() -> None:
    body = {"D": {"Success": False, "Code": 1055, "Message": "stale"}}
    with pytest.raises(SparkAPIError) as caught:
        parse_spark(fake_response(body, 200))
    assert type(caught.value).__name__ == "WriteConflict"
    assert caught.value.code == 1055
    assert caught.value.message == "stale"


def test_parse_reso_collection_and_entity() -> None:
    collection = parse_reso(
        fake_response(
            {
                "@odata.context": "x#Property",
                "value": [{"ListingKey": "a"}, {"ListingKey": "b"}],
                "@odata.count": "12",
                "@odata.nextLink": "https://api.example/Reso/OData/Property?$skip=2",
            }
        )
    )
    assert collection.value == [{"ListingKey": "a"}, {"ListingKey": "b"}]
    assert collection.count == 12
    assert len(collection) == 2
    assert collection.next_link == "https://api.example/Reso/OData/Property?$skip=2"
    entity = parse_reso(fake_response({"@odata.context": "x#Property/$entity", "ListingKey": "a"}))
    assert entity.value["ListingKey"] == "a"
    assert len(entity) == 1
    assert list(entity) == [entity.value]
    assert entity.count is None
    assert entity.next_link is None
    with pytest.raises(UnexpectedResponse):
        parse_reso(fake_response(b"<xml/>"))


# -- the verbs through a protected view --------------------------------------------------------


def test_get_listings_in_a_protected_view(user: FlowClient, sandbox: SandboxServer) -> None:
    before = api_calls(sandbox)
    response = call(user, "GET", "listings", params={"_limit": 5, "_pagination": 1})
    assert response.status_code == 200, response.get_data(as_text=True)
    out = response.json
    expected_ids = [r["Id"] for r in data.listings()[:5]]
    assert [r["Id"] for r in out["results"]] == expected_ids
    assert out["pagination"] == {
        "TotalRows": len(data.listings()),
        "PageSize": 5,
        "TotalPages": math.ceil(len(data.listings()) / 5),
        "CurrentPage": 1,
    }
    assert out["raw"]["D"]["Success"] is True
    assert out["raw"]["D"]["Results"] == out["results"]
    assert out["status"] == 200
    assert out["count"] == 5
    assert api_calls(sandbox) == before + 1


def test_filter_select_orderby_are_passed_through(user: FlowClient) -> None:
    spark_filter = f"City Eq '{CITY}' And ListPrice Ge 300000.0"
    response = call(
        user,
        "GET",
        "listings",
        params={
            "_filter": spark_filter,
            "_select": "ListPrice,City",
            "_orderby": "-ListPrice",
            "_limit": 25,
            "_pagination": 1,
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    out = response.json
    matching = [r for r in CITY_ROWS if r["StandardFields"]["ListPrice"] >= 300000.0]
    assert out["pagination"]["TotalRows"] == len(matching) > 0
    fields = [r["StandardFields"] for r in out["results"]]
    assert all(set(f) == {"ListPrice", "City"} for f in fields)
    assert all(f["City"] == CITY and f["ListPrice"] >= 300000.0 for f in fields)
    prices = [f["ListPrice"] for f in fields]
    assert prices == sorted(prices, reverse=True)
    assert prices[0] == max(r["StandardFields"]["ListPrice"] for r in matching)


def test_contacts_post_get_put_delete(user: FlowClient) -> None:
    created = call(
        user,
        "POST",
        "contacts",
        json={"FirstName": "Ada", "LastName": "Lovelace", "PrimaryEmail": "ada@example.com"},
    )
    # The sandbox answers 1035 unless the body is wrapped as {"D": {...}}: this proves the wrap.
    assert created.status_code == 200, created.get_data(as_text=True)
    contact_id = created.json["results"][0]["Id"]

    got = call(user, "GET", f"contacts/{contact_id}").json["results"][0]
    assert got["DisplayName"] == "Ada Lovelace"
    assert got["OwnerId"] == MEMBER.id

    updated = call(user, "PUT", f"contacts/{contact_id}", json={"Company": "Analytical Engines"})
    assert updated.status_code == 200, updated.get_data(as_text=True)
    assert updated.json["results"][0]["Company"] == "Analytical Engines"

    listed = call(user, "GET", "contacts", params={"_filter": "LastName Eq 'Lovelace'"})
    assert contact_id in [r["Id"] for r in listed.json["results"]]

    assert call(user, "DELETE", f"contacts/{contact_id}").status_code == 200
    gone = call(user, "GET", f"contacts/{contact_id}")
    assert gone.status_code == 404
    assert gone.json["error"] == "404"


def test_savedsearches_post_already_wrapped_body_is_not_wrapped_twice(user: FlowClient) -> None:
    payload = {"D": {"Name": "Big houses", "Filter": "BedsTotal Ge 5"}}
    created = call(user, "POST", "savedsearches", json=payload)
    assert created.status_code == 200, created.get_data(as_text=True)
    search_id = created.json["results"][0]["Id"]
    got = call(user, "GET", f"savedsearches/{search_id}").json["results"][0]
    assert got["Name"] == "Big houses"
    assert got["Filter"] == "BedsTotal Ge 5"
    assert call(user, "DELETE", f"savedsearches/{search_id}").status_code == 200


# -- paging ------------------------------------------------------------------------------------


def test_paginate_walks_every_page(user: FlowClient, sandbox: SandboxServer) -> None:
    before = api_calls(sandbox)
    response = user.post(
        "/paginate",
        json={"path": "listings", "params": {"_filter": f"City Eq '{CITY}'", "_limit": 7}},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    ids = response.json["ids"]
    assert ids == [r["Id"] for r in CITY_ROWS]  # TotalRows records, each once, in order
    assert len(ids) == len(CITY_ROWS) == 50
    assert api_calls(sandbox) - before == math.ceil(50 / 7)


@pytest.mark.parametrize(("max_records", "calls"), [(12, 2), (14, 2), (3, 1)])
def test_paginate_is_bounded_by_max_records(
    user: FlowClient, sandbox: SandboxServer, max_records: int, calls: int
) -> None:
    before = api_calls(sandbox)
    response = user.post(
        "/paginate",
        json={
            "path": "listings",
            "params": {"_filter": f"City Eq '{CITY}'", "_limit": 7},
            "max_records": max_records,
        },
    )
    assert response.json["ids"] == [r["Id"] for r in CITY_ROWS[:max_records]]
    # No page is fetched beyond what max_records needs (14 = two full pages: no third call).
    assert api_calls(sandbox) - before == calls


def test_paginate_with_skiptoken(user: FlowClient, sandbox: SandboxServer) -> None:
    before = api_calls(sandbox)
    response = user.post(
        "/paginate",
        json={
            "path": "listings",
            "params": {"_filter": f"City Eq '{CITY}'", "_skiptoken": "", "_limit": 20},
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["ids"] == [r["Id"] for r in CITY_ROWS]
    assert api_calls(sandbox) - before == 3  # 20 + 20 + 10, then SkipToken is null


def test_paginate_with_skip_walks_offsets(user: FlowClient, sandbox: SandboxServer) -> None:
    """``_skip`` pages answer ``CurrentOffset`` (no ``CurrentPage``): paginate walks offsets."""
    before = api_calls(sandbox)
    response = user.post(
        "/paginate",
        json={
            "path": "listings",
            "params": {"_filter": f"City Eq '{CITY}'", "_skip": 5, "_limit": 20},
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["ids"] == [r["Id"] for r in CITY_ROWS[5:]]
    assert api_calls(sandbox) - before == 3  # offsets 5, 25, 45


# -- RESO Web API ------------------------------------------------------------------------------


def test_reso_collection_with_top_and_count(user: FlowClient, sandbox: SandboxServer) -> None:
    response = user.post(
        "/reso", json={"path": "Property", "params": {"$top": 5, "$count": "true"}}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    out = response.json
    assert [p["ListingKey"] for p in out["value"]] == [
        p["ListingKey"] for p in data.properties()[:5]
    ]
    assert out["len"] == 5
    assert out["count"] == len(data.properties())
    assert out["raw"]["@odata.context"].endswith("$metadata#Property")
    assert out["next_link"].startswith(sandbox.url + "/Reso/OData/Property?")
    assert "$skiptoken=" in out["next_link"]
    assert sandbox.counters()["reso_calls"] == 1


def test_reso_single_entity(user: FlowClient) -> None:
    key = data.properties()[7]["ListingKey"]
    response = user.post("/reso", json={"path": f"Property('{key}')"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["value"]["ListingKey"] == key
    assert response.json["len"] == 1
    assert response.json["next_link"] is None


def test_reso_paginate_follows_next_link(user: FlowClient, sandbox: SandboxServer) -> None:
    before = sandbox.counters()["reso_calls"]
    params = {"$filter": f"City eq '{CITY}'", "$top": 20}
    response = user.post("/reso/paginate", json={"path": "Property", "params": params})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["keys"] == [r["Id"] for r in CITY_ROWS]
    assert sandbox.counters()["reso_calls"] - before == 3

    before = sandbox.counters()["reso_calls"]
    bounded = user.post(
        "/reso/paginate", json={"path": "Property", "params": params, "max_records": 20}
    )
    assert bounded.json["keys"] == [r["Id"] for r in CITY_ROWS[:20]]
    assert sandbox.counters()["reso_calls"] - before == 1


def test_reso_paginate_walks_skiptoken_links_with_expand(
    user: FlowClient, sandbox: SandboxServer
) -> None:
    """Production-style nextLinks (opaque ``$skiptoken``, ``$expand`` kept) are walked to the end;
    the sandbox refuses a link that was rebuilt, so every page arriving proves they were not."""
    params = {"$filter": f"City eq '{CITY}'", "$top": 25, "$expand": "Media"}
    before = sandbox.counters()["reso_calls"]
    response = user.post("/reso/paginate", json={"path": "Property", "params": params})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["keys"] == [r["Id"] for r in CITY_ROWS]
    assert sandbox.counters()["reso_calls"] - before == 2


def fake_reso(http: FakeHTTP) -> ResoAPI:
    """A RESO client on ``https://api.example`` that talks to ``http`` only."""
    return ResoAPI(
        base_url="https://api.example/Reso/OData/",
        user_agent="tests",
        tokens=StaticTokens("secret-token"),
        http=http,  # type: ignore[arg-type]
    )


class FakeHTTP:
    """A stand-in for the pooled ``requests.Session``: canned answers, records every call."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def send(self, request: requests.PreparedRequest, **kw: Any) -> Any:
        self.calls.append((str(request.method), str(request.url), dict(request.headers)))
        return self.answers.pop(0)


@pytest.mark.parametrize(
    "evil",
    [
        "https://evil.example/Reso/OData/Property?$skip=2",
        "https://api.example:8443/Reso/OData/Property?$skip=2",
        "http://api.example/Reso/OData/Property?$skip=2",
    ],
    ids=["other-host", "other-port", "downgrade"],
)
def test_reso_paginate_refuses_a_next_link_to_another_origin(evil: str) -> None:
    http = FakeHTTP(
        [
            fake_response(
                {"value": [{"ListingKey": "a"}, {"ListingKey": "b"}], "@odata.nextLink": evil}
            )
        ]
    )
    client = fake_reso(http)
    pages = client.paginate("Property", params={"$top": 2})
    assert [next(pages)["ListingKey"], next(pages)["ListingKey"]] == ["a", "b"]
    with pytest.raises(SparkAPIError) as caught:
        next(pages)
    assert "Refusing to send the user's token" in caught.value.message
    assert "secret-token" not in caught.value.message
    assert len(http.calls) == 1  # the token never went to the other origin


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("/Reso/OData/Property?$skip=2", "https://api.example/Reso/OData/Property?$skip=2"),
        ("Property?$skip=2", "https://api.example/Reso/OData/Property?$skip=2"),
    ],
    ids=["root-relative", "relative"],
)
def test_reso_paginate_resolves_a_relative_next_link_against_the_base(
    link: str, expected: str
) -> None:
    http = FakeHTTP(
        [
            fake_response({"value": [{"ListingKey": "a"}], "@odata.nextLink": link}),
            fake_response({"value": [{"ListingKey": "b"}]}),
        ]
    )
    client = fake_reso(http)
    assert [r["ListingKey"] for r in client.paginate("Property")] == ["a", "b"]
    assert http.calls[1][1] == expected


def test_reso_paginate_sends_the_next_link_exactly_as_given() -> None:
    link = "https://api.example/Reso/OData/Property?$top=2&$skiptoken=st1%2Bab%2Fc%3D%3D"
    http = FakeHTTP(
        [
            fake_response({"value": [{"ListingKey": "a"}], "@odata.nextLink": link}),
            fake_response({"value": [{"ListingKey": "b"}]}),
        ]
    )
    client = fake_reso(http)
    assert [r["ListingKey"] for r in client.paginate("Property", params={"$top": 2})] == [
        "a",
        "b",
    ]
    assert http.calls[1][1] == link  # not decoded, re-encoded or rebuilt from parameters


# -- headers -----------------------------------------------------------------------------------


class EchoHandler(BaseHTTPRequestHandler):
    """Answers a D envelope describing the request it got (HTTP/1.1, keep-alive)."""

    protocol_version = "HTTP/1.1"

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        result = {
            "method": self.command,
            "path": parts.path,
            "query": parts.query,
            "headers": dict(self.headers.items()),
            "body": self.rfile.read(length).decode() if length else "",
            "port": self.client_address[1],
        }
        payload = json.dumps({"D": {"Success": True, "Results": [result]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _echo

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    """A loopback HTTP/1.1 server that echoes each request (the sandbox closes connections)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


def echo_client(url: str, user_agent: str = "my-app/1.0") -> SparkAPI:
    return SparkAPI(
        base_url=url + "/v1/",
        user_agent=user_agent,
        tokens=StaticTokens("tok-123"),
        http=pooled_session(),
    )


def test_headers_sent_on_every_call(echo_server: str) -> None:
    client = echo_client(echo_server)
    seen = client.get("listings", params={"_limit": 2, "_select": "ListPrice"}).first()
    assert seen["method"] == "GET"
    assert seen["path"] == "/v1/listings"
    assert seen["query"] == "_limit=2&_select=ListPrice"
    assert seen["headers"]["Authorization"] == "Bearer tok-123"
    assert seen["headers"]["Accept"] == "application/json"
    assert seen["headers"]["X-SparkApi-User-Agent"] == "my-app/1.0"
    assert "Cookie" not in seen["headers"]
    assert "gzip" in seen["headers"]["Accept-Encoding"]  # the session's own headers too

    for method in ("post", "put"):
        sent = getattr(client, method)("contacts", json={"FirstName": "Ada"}).first()
        assert sent["method"] == method.upper()
        assert sent["headers"]["Content-Type"] == "application/json"
        assert json.loads(sent["body"]) == {"D": {"FirstName": "Ada"}}
        assert sent["headers"]["Authorization"] == "Bearer tok-123"
    deleted = client.delete("contacts/1").first()
    assert deleted["method"] == "DELETE"
    assert deleted["body"] == ""


def test_one_pooled_connection_is_reused(echo_server: str) -> None:
    client = echo_client(echo_server)
    ports = {client.get("my/account").first()["port"] for _ in range(5)}
    assert len(ports) == 1  # keep-alive: five calls, one TCP connection


def test_missing_user_agent_is_refused_by_the_api(user: FlowClient, app: Flask) -> None:
    sid = user.cookie()
    assert sid is not None
    token = app.extensions["spark.state"].tokens.load(sid).access_token
    common: dict[str, Any] = {"tokens": StaticTokens(token), "http": pooled_session()}
    base = app.config["SPARK_API_BASE_URL"]
    ok = SparkAPI(base_url=base, user_agent="flask-spark-tests", **common)
    assert ok.get("my/account").first()["Id"] == MEMBER.id
    anonymous_app = SparkAPI(base_url=base, user_agent="", **common)
    with pytest.raises(SparkAPIError) as caught:
        anonymous_app.get("my/account")
    assert type(caught.value).__name__ == "InvalidRequest"
    assert (caught.value.status, caught.value.code) == (400, 1016)


# -- acting outside a request ------------------------------------------------------------------


def run_in_thread(job: Any) -> Any:
    """Run ``job`` in a separate thread (a stand-in for a background worker); its result."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = job()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    if "error" in box:
        raise box["error"]
    return box["result"]


def test_background_job_acts_for_a_session_with_the_same_refresh_rules(
    user: FlowClient, app: Flask, sandbox: SandboxServer
) -> None:
    sid = user.cookie()
    assert sid is not None
    spark: SparkAuth = app.extensions["spark"]
    refreshed: list[str] = []

    def on_refresh(sender: Flask, sid: str) -> None:
        refreshed.append(sid)

    sandbox.expire_tokens(MEMBER.id)
    before = sandbox.counters()
    with token_refreshed.connected_to(on_refresh, app):
        # No request, no app context: the job has only the app and its handle.
        account = run_in_thread(
            lambda: spark.api_for_job(job_handle(app, sid), app).get("my/account").first()
        )
    after = sandbox.counters()
    assert account["Id"] == MEMBER.id
    assert after["refreshes"] - before["refreshes"] == 1
    assert after["api_calls"] - before["api_calls"] == 2  # 1020, then the retry
    assert refreshed == [sid]

    # The browser's next request uses the token the job refreshed: no second refresh.
    assert user.get("/dashboard").status_code == 200
    assert sandbox.counters()["refreshes"] == after["refreshes"]

    # Inside an app context, the app argument may be left out.
    with app.app_context():
        assert spark.api_for_job(job_handle(app, sid)).get("my/account").first()["Id"] == MEMBER.id


def test_a_job_handle_needs_a_signed_in_request(app: Flask) -> None:
    spark: SparkAuth = app.extensions["spark"]
    with app.test_request_context(), pytest.raises(LoginRequired):
        spark.job_handle()
    for made_up in ("spark-job." + "x" * 43, "no-such-session", ""):
        with pytest.raises(SessionExpired):
            spark.api_for_job(made_up, app).get("my/account")


def test_a_job_handle_is_revocable_ends_with_the_session_and_is_no_cookie(
    user: FlowClient, app: Flask, sandbox: SandboxServer, redis_client: Any, key_prefix: str
) -> None:
    spark: SparkAuth = app.extensions["spark"]
    sid = user.cookie()
    assert sid is not None
    first, second = job_handle(app, sid), job_handle(app, sid)
    assert sid not in first
    assert first != second
    job = spark.api_for_job(first, app)
    assert repr(first) not in repr(job.tokens)
    assert job.get("my/account").first()["Id"] == MEMBER.id
    # A handle is not a session cookie: a browser holding it is nobody.
    thief = app.test_client()
    thief.set_cookie("session", first)
    assert thief.get("/dashboard").status_code == 302
    # Revoked: the client made from it stops at its next call; the other handle still works.
    assert spark.revoke_job_handle(first, app)
    assert not spark.revoke_job_handle(first, app)
    with pytest.raises(SessionExpired):
        job.get("my/account")
    other = spark.api_for_job(second, app)
    assert other.get("my/account").first()["Id"] == MEMBER.id
    # The session ends (sign-out): every handle ends with it, and no key of theirs is left.
    assert user.post("/spark/logout", data={"spark_csrf_token": user.csrf()}).status_code == 302
    with pytest.raises(SessionExpired):
        other.get("my/account")
    assert list(redis_client.scan_iter(match=key_prefix + "job*")) == []


def test_not_found_propagates_as_typed_error_outside_a_request(
    user: FlowClient, app: Flask
) -> None:
    sid = user.cookie()
    assert sid is not None
    api = app.extensions["spark"].api_for_job(job_handle(app, sid), app)
    with pytest.raises(ResourceNotFound) as caught:
        api.get("listings/00000000000000000000000000")
    assert caught.value.status == 404


def test_one_token_read_per_request_however_many_calls(user: FlowClient, app: Flask) -> None:
    """A view making two calls decrypts the token record once, read with the session."""
    state = app.extensions["spark.state"]
    reads: list[str] = []
    decrypted: list[str] = []
    load, open_ = state.tokens.load, state.vault.open

    def counting_load(sid: str) -> Any:
        reads.append(sid)
        return load(sid)

    def counting_open(blob: bytes, sid: str) -> Any:
        decrypted.append(sid)
        return open_(blob, sid)

    state.tokens.load, state.vault.open = counting_load, counting_open
    try:
        response = user.get("/two-calls")
    finally:
        del state.tokens.load, state.vault.open
    assert response.status_code == 200
    assert response.json == {"account": MEMBER.name, "listings": 2}
    assert decrypted == [user.cookie()]
    assert reads == [], "the record came with the session: no separate read"
