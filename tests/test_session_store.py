"""The server-side session store: an in-flight request cannot undo a logout done elsewhere."""

from __future__ import annotations

import threading
from typing import Any

import redis
from flask import Flask, session

from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import MEMBER, FlowClient


def test_in_flight_request_does_not_resurrect_a_destroyed_session(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    app: Flask = make_app(config)
    entered, release = threading.Event(), threading.Event()

    @app.get("/slow")
    def slow() -> str:
        session["touched"] = True  # a modified session is written back at the end
        entered.set()
        assert release.wait(10)
        return "done"

    flow = FlowClient(app, sandbox)
    flow.login("/dashboard")
    sid = flow.cookie()
    key = f"{key_prefix}session:{sid}"
    assert redis_client.exists(key)

    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(flow.get("/slow").status_code))
    worker.start()
    assert entered.wait(10)
    # Meanwhile the provider signs the user out everywhere (back-channel logout).
    state = app.extensions["spark.state"]
    try:
        assert state.registry.destroy_all(sub=MEMBER.id)
        assert not redis_client.exists(key)
    finally:
        release.set()
        worker.join(10)
    assert results == [200]
    assert not redis_client.exists(key), "the in-flight request wrote the session back"
    assert flow.get("/dashboard").status_code == 302
