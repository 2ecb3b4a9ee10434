"""Beside the app's own login: docs/_examples/own_login.py, the recipe of docs/own-login.rst,
with a Flask-Login app and a plain ``session["user_id"]`` app."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
from flask import Flask

from flask_spark.sandbox import SandboxServer

from .helpers import MEMBER, FlowClient, closed_port

RECIPE = Path(__file__).parent.parent / "docs" / "_examples" / "own_login.py"


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_own_login", RECIPE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["plain", "flask_login"])
def own_app(request: pytest.FixtureRequest, recipe: ModuleType, config: dict[str, Any]) -> Flask:
    factory = recipe.create_plain_app if request.param == "plain" else recipe.create_flask_login_app
    app: Flask = factory(config)
    return app


def app_login(flow: FlowClient) -> None:
    answer = flow.post("/login", data={"username": "ann", "password": "secret"})
    assert answer.status_code == 302


def token_keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=prefix + "tok:*"))


def test_the_apps_own_data_survives_a_flexmls_sign_in_and_sign_out(
    own_app: Flask, sandbox: SandboxServer
) -> None:
    flow = FlowClient(own_app, sandbox)
    app_login(flow)
    flow.post("/cart/book")
    before = flow.cookie()
    flow.login("/listings")
    assert flow.cookie() != before  # a new id at sign-in, carrying the app's data over
    home = flow.get("/").json
    assert home == {"user": "ann", "flexmls": MEMBER.name, "cart": ["book"]}
    assert flow.post("/spark/logout", data={"spark_csrf_token": flow.csrf()}).status_code == 302
    assert flow.get("/").json == {"user": "ann", "flexmls": None, "cart": ["book"]}
    assert flow.get("/listings").status_code == 302


def test_the_apps_own_log_out_ends_the_flexmls_sign_in_for_real(
    own_app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow = FlowClient(own_app, sandbox)
    app_login(flow)
    flow.login("/listings")
    assert token_keys(redis_client, key_prefix)
    revocations = sandbox.counters()["revocations"]
    flow.post("/logout")  # session.clear() or logout_user()
    assert token_keys(redis_client, key_prefix) == []  # no token outlives its session
    assert sandbox.counters()["revocations"] > revocations  # and the grant was revoked
    assert flow.get("/").json["flexmls"] is None
    assert flow.get("/").json["user"] is None


def test_the_session_id_changes_when_the_app_logs_its_user_in_and_out(
    own_app: Flask, sandbox: SandboxServer, key_prefix: str, redis_client: redis.Redis
) -> None:
    flow = FlowClient(own_app, sandbox)
    flow.post("/cart/pen")  # a session before login: an id an attacker could have planted
    planted = flow.cookie()
    app_login(flow)
    signed_in = flow.cookie()
    assert signed_in != planted
    assert not redis_client.exists(f"{key_prefix}session:{planted}")
    flow.post("/cart/book")
    flow.post("/logout")
    assert flow.cookie() != signed_in


def test_a_change_that_cannot_be_stored_is_not_answered_as_a_success(
    recipe: ModuleType, config: dict[str, Any], sandbox: SandboxServer
) -> None:
    down = f"redis://127.0.0.1:{closed_port()}/0"
    for factory in (recipe.create_plain_app, recipe.create_flask_login_app):
        flow = FlowClient(factory({**config, "SPARK_REDIS_URL": down}), sandbox)
        assert flow.get("/").status_code == 200  # public pages work: reads stay as they are
        answer = flow.post("/login", data={"username": "ann", "password": "secret"})
        assert answer.status_code == 503  # not a redirect as if it had worked
        assert flow.cookie() is None


def test_a_write_that_fails_lets_the_apps_handler_answer(
    recipe: ModuleType, config: dict[str, Any], sandbox: SandboxServer
) -> None:
    from flask_spark.core.errors import SessionStoreUnavailable

    app = recipe.create_plain_app(config)

    @app.errorhandler(SessionStoreUnavailable)
    def store_down(exc: Exception) -> tuple[str, int]:
        return "try again soon", 503

    flow = FlowClient(app, sandbox)
    app_login(flow)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("down")

    app.session_interface.client.set = refuse  # type: ignore[attr-defined]
    answer = flow.post("/cart/book")
    assert (answer.status_code, answer.get_data(as_text=True)) == (503, "try again soon")
