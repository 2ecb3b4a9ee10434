"""Several API calls at once: ``spark_api.gather`` in sync views, ``aget``/``apost``/... under
``asyncio.gather`` in ``async def`` views, and ``paginate`` fetching known pages ahead.

Concurrency is shown by events, never by timing: the sandbox holds API calls at a gate, and a
test waits until N of them are in flight together (calls made one after another would never
get there). Timings are the benchmark's (``benchmarks/bench_concurrency.py``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask, request
from werkzeug.test import TestResponse

from flask_spark import ResourceNotFound, spark_api, spark_login_required
from flask_spark.core.api import CONCURRENCY, SparkAPI, StaticTokens
from flask_spark.core.errors import UnexpectedResponse, UnsafeURL
from flask_spark.sandbox import SandboxServer
from flask_spark.sandbox import listings_data as data

from .conftest import make_app
from .helpers import MEMBER, FlowClient

CITY = "Sioux Falls"
CITY_IDS = [r["Id"] for r in data.listings() if r["StandardFields"]["City"] == CITY]
#: The worker threads of flask-spark's fan-out and of asyncio.to_thread.
WORKER_PREFIXES = ("flask-spark-api", "asyncio_")


def summary(account: Any, listings: Any, homes: Any, searches: Any) -> dict[str, Any]:
    return {
        "account": account.first()["Id"],
        "listings": len(listings),
        "homes": [h["ListingKey"] for h in homes.value],
        "searches": len(searches),
    }


def add_views(app: Flask) -> Flask:
    listings = {"_limit": 3}
    homes = {"$top": 2}

    @app.get("/sync")
    @spark_login_required
    def sync_view() -> dict[str, Any]:
        return summary(
            *spark_api.gather(
                lambda: spark_api.get("my/account"),
                lambda: spark_api.get("listings", params=listings),
                lambda: spark_api.reso.get("Property", params=homes),
                lambda: spark_api.get("savedsearches"),
            )
        )

    @app.get("/async")
    @spark_login_required
    async def async_view() -> dict[str, Any]:
        return summary(
            *await asyncio.gather(
                spark_api.aget("my/account"),
                spark_api.aget("listings", params=listings),
                spark_api.reso.aget("Property", params=homes),
                spark_api.aget("savedsearches"),
            )
        )

    @app.get("/one-by-one")
    @spark_login_required
    def one_by_one() -> dict[str, Any]:
        return summary(
            spark_api.get("my/account"),
            spark_api.get("listings", params=listings),
            spark_api.reso.get("Property", params=homes),
            spark_api.get("savedsearches"),
        )

    @app.get("/async-writes")
    @spark_login_required
    async def async_writes() -> dict[str, Any]:
        made = (await spark_api.apost("contacts", json={"DisplayName": "Sam Lee"})).first()
        path = f"contacts/{made['Id']}"
        await spark_api.aput(path, json={"PrimaryEmail": "sam@example.com"})
        changed = (await spark_api.aget(path)).first()
        await spark_api.adelete(path)
        try:
            await spark_api.aget(path)
        except ResourceNotFound as exc:
            return {"email": changed["PrimaryEmail"], "after_delete": exc.status}
        return {"email": changed["PrimaryEmail"], "after_delete": 200}

    @app.get("/paginate")
    @spark_login_required
    def paginate() -> dict[str, Any]:
        params = {"_filter": f"City Eq '{CITY}'", "_limit": 7}
        most = request.args.get("max", type=int)
        records = spark_api.paginate("listings", params, max_records=most)
        return {"ids": [r["Id"] for r in records]}

    return app


@pytest.fixture
def app(config: dict[str, Any]) -> Flask:
    return add_views(make_app(config))


@pytest.fixture
def user(flow: FlowClient) -> FlowClient:
    assert flow.login("/").status_code == 302
    return flow


def workers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(WORKER_PREFIXES)]


def in_background(send: Callable[[], TestResponse]) -> Any:
    """Start ``send`` on a thread of its own (the test thread then drives the sandbox)."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(send)
    finally:
        pool.shutdown(wait=False)  # its thread ends with ``send``


@pytest.mark.parametrize("view", ["/sync", "/async"])
def test_four_calls_are_in_flight_together(
    user: FlowClient, sandbox: SandboxServer, view: str
) -> None:
    expected = user.get("/one-by-one").json
    with sandbox.hold("api") as gate:
        answer = in_background(lambda: user.get(view))
        # One after another, the first call would wait at the gate and no second would come.
        assert gate.wait_arrivals(4, timeout=30), gate.arrivals
        gate.release()
        response = answer.result(timeout=30)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == expected
    assert expected["account"] == MEMBER.id
    assert workers() == []  # every worker thread ended with the request


@pytest.mark.parametrize("view", ["/sync", "/async"])
def test_a_fan_out_reads_and_decrypts_the_token_record_once(
    user: FlowClient, app: Flask, view: str
) -> None:
    state = app.extensions["spark.state"]
    reads: list[str] = []
    opened: list[str] = []
    load, open_ = state.tokens.load, state.vault.open
    state.tokens.load = lambda sid: reads.append(sid) or load(sid)
    state.vault.open = lambda blob, sid: opened.append(sid) or open_(blob, sid)
    try:
        assert user.get(view).status_code == 200
    finally:
        del state.tokens.load, state.vault.open
    assert (reads, opened) == ([], [user.cookie()])


@pytest.mark.parametrize("view", ["/sync", "/async"])
def test_one_refresh_whatever_the_fan_out(
    user: FlowClient, sandbox: SandboxServer, view: str
) -> None:
    """All four calls (three Spark 1020s, one RESO 401) meet the expired token: one refresh,
    and every call succeeds on its retry; the provider sees no reused refresh token."""
    assert sandbox.expire_tokens(MEMBER.id) == 1
    before = sandbox.counters()
    state = sandbox.state
    calls, token = state.hold("api"), state.hold("token")
    try:
        answer = in_background(lambda: user.get(view))
        assert calls.wait_arrivals(4, timeout=30)  # all four carry the expired token
        calls.release()
        assert token.wait_arrivals(1, timeout=30)  # the refresh, held at the provider
        assert sandbox.counters()["api_calls"] - before["api_calls"] == 4
        token.release()
        response = answer.result(timeout=30)
    finally:
        state.unhold("api")
        state.unhold("token")
    assert response.status_code == 200, response.get_data(as_text=True)
    after = sandbox.counters()
    assert after["refreshes"] - before["refreshes"] == 1
    assert token.arrivals == 1
    assert after["refresh_reuse"] == before["refresh_reuse"]
    assert after["api_calls"] - before["api_calls"] == 8  # four 401s, four retries


def test_awaitable_writes_and_errors_are_the_sync_ones(user: FlowClient) -> None:
    response = user.get("/async-writes")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {"email": "sam@example.com", "after_delete": 404}


def test_paginate_fetches_known_pages_ahead_in_order(
    user: FlowClient, sandbox: SandboxServer
) -> None:
    state = sandbox.state
    first = state.hold("api")
    try:
        answer = in_background(lambda: user.get("/paginate"))
        assert first.wait_arrivals(1, timeout=30)
        ahead = state.hold("api")  # the calls after the first page wait here
        first.release()
        # 50 records at 7 a page: the first page says 8 pages; pages 2-5 are asked together.
        assert ahead.wait_arrivals(CONCURRENCY, timeout=30)
        assert ahead.arrivals == CONCURRENCY  # the next is asked once page 2 is taken
        ahead.release()
        response = answer.result(timeout=30)
    finally:
        state.unhold("api")
    assert response.json["ids"] == CITY_IDS
    assert workers() == []


def test_paginate_asks_for_the_pages_max_records_needs_at_once(
    user: FlowClient, sandbox: SandboxServer
) -> None:
    before = sandbox.counters()["api_calls"]
    with sandbox.hold("api") as gate:
        answer = in_background(lambda: user.get("/paginate?max=20"))
        assert gate.wait_arrivals(3, timeout=30)  # 20 records at 7 a page: pages 1-3 at once
        gate.release()
        response = answer.result(timeout=30)
    assert response.json["ids"] == CITY_IDS[:20]
    assert sandbox.counters()["api_calls"] - before == 3


# -- at the client's edge ---------------------------------------------------------------------


class HeldHTTP:
    """A pooled-session stand-in that holds every call until released; counts calls in flight."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.cond = threading.Condition()
        self.arrived = self.in_flight = self.most = 0
        self.released = False

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        with self.cond:
            self.arrived += 1
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.released, timeout=30)
            self.in_flight -= 1
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(self.body).encode()
        return response


def client_on(http: Any) -> SparkAPI:
    return SparkAPI(
        base_url="https://api.example/v1/", user_agent="t", tokens=StaticTokens("t"), http=http
    )


def test_at_most_concurrency_calls_in_flight_whatever_the_fan_out() -> None:
    http = HeldHTTP({"D": {"Success": True, "Results": []}})
    client = client_on(http)

    async def many() -> list[Any]:
        return await asyncio.gather(*(client.aget(f"x/{i}") for i in range(CONCURRENCY + 3)))

    done = in_background(lambda: asyncio.run(many()))
    with http.cond:
        assert http.cond.wait_for(lambda: http.arrived >= CONCURRENCY, timeout=30)
        http.released = True
        http.cond.notify_all()
    assert len(done.result(timeout=30)) == CONCURRENCY + 3
    assert http.most == CONCURRENCY


def test_every_form_keeps_the_url_rules() -> None:
    http = HeldHTTP({})
    client = client_on(http)
    for send in (
        lambda: asyncio.run(client.aget("https://evil.example/v1/listings")),
        lambda: asyncio.run(client.adelete("../../admin")),
        lambda: client.gather(lambda: client.get("//evil.example/v1/x")),
    ):
        with pytest.raises(UnsafeURL):
            send()
    assert http.arrived == 0  # refused before any request


@pytest.mark.parametrize(
    ("field", "value"),
    [("TotalPages", "many"), ("TotalPages", "²"), ("TotalPages", 2.5), ("CurrentPage", True)],
)
def test_an_unreadable_pagination_value_is_an_api_error(field: str, value: Any) -> None:
    """It used to reach int() and make the view a 500."""
    pagination = {"CurrentPage": 1, "TotalPages": 3, field: value}
    http = HeldHTTP({"D": {"Success": True, "Results": [{"Id": "1"}], "Pagination": pagination}})
    http.released = True
    with pytest.raises(UnexpectedResponse) as caught:
        list(client_on(http).paginate("listings"))
    assert caught.value.status == 502
    assert field in caught.value.message
