"""Template helpers: the globals and the importable macros, for anonymous and signed-in users."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask, render_template_string

from flask_spark.sandbox import MEMBERS, SandboxServer

from .conftest import make_app
from .helpers import FlowClient

GLOBALS = """\
logged_in={{ spark_logged_in }}
user={{ spark_user.name or "anonymous" }}|{{ spark_user.id }}|{{ spark_user.is_authenticated }}
mls={{ spark_user.get("MemberMlsId", "-") }}
login={{ spark_login_url() }}
login_next={{ spark_login_url(next="/listings?city=Fargo") }}
logout={{ spark_logout_url() }}
csrf={{ spark_csrf_token() }}
"""

MACROS = """\
{% from "spark/macros.html" import login_button, logout_form, revoke_form %}
{{ login_button() }}
{{ login_button(next="/dashboard", label="Go <in>", class="big button") }}
{{ logout_form() }}
{{ logout_form(label="Leave", class="out") }}
{{ revoke_form() }}
"""


def _lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture
def tapp(config: dict[str, Any]) -> Flask:
    app = make_app(config)

    @app.get("/t/globals")
    def globals_page() -> str:
        return render_template_string(GLOBALS)

    @app.get("/t/macros")
    def macros_page() -> str:
        return render_template_string(MACROS)

    return app


@pytest.fixture
def tflow(tapp: Flask, sandbox: SandboxServer) -> FlowClient:
    return FlowClient(tapp, sandbox)


def _csrf_values(html: str) -> set[str]:
    return set(re.findall(r'name="spark_csrf_token" value="([^"]+)"', html))


def test_globals_for_an_anonymous_user(tflow: FlowClient) -> None:
    page = _lines(tflow.get("/t/globals").get_data(as_text=True))
    assert page["logged_in"] == "False"
    assert page["user"] == "anonymous|None|False"
    assert page["mls"] == "-"
    assert page["login"] == "/spark/login"
    assert page["login_next"] == "/spark/login?next=/listings?city%3DFargo"
    assert page["logout"] == "/spark/logout"
    assert len(page["csrf"]) >= 32
    # The token is the session's: stable across requests, and the one the server checks.
    again = _lines(tflow.get("/t/globals").get_data(as_text=True))
    assert again["csrf"] == page["csrf"]
    with tflow.client.session_transaction() as sess:
        assert sess["_spark_csrf"] == page["csrf"]


def test_globals_for_a_signed_in_user(tflow: FlowClient) -> None:
    member = MEMBERS[1]
    assert tflow.login("/t/globals", member.id).status_code == 302
    page = _lines(tflow.get("/t/globals").get_data(as_text=True))
    assert page["logged_in"] == "True"
    assert page["user"] == f"{member.name}|{member.id}|True"
    assert page["mls"] == member.mls_id
    assert page["logout"] == "/spark/logout"


def test_macros_for_an_anonymous_user(tflow: FlowClient) -> None:
    html = tflow.get("/t/macros").get_data(as_text=True)
    assert '<a class="spark-login" href="/spark/login">Sign in with Flexmls</a>' in html
    # next is URL-encoded, the label HTML-escaped, the class used as given.
    assert '<a class="big button" href="/spark/login?next=/dashboard">Go &lt;in&gt;</a>' in html
    assert '<form class="spark-logout" method="post" action="/spark/logout">' in html
    assert '<form class="out" method="post" action="/spark/logout">' in html
    assert '<button type="submit">Leave</button>' in html
    assert '<form class="spark-revoke" method="post" action="/spark/revoke">' in html
    assert '<button type="submit">Disconnect Flexmls</button>' in html
    # Every form carries the same session CSRF token.
    assert len(_csrf_values(html)) == 1


def test_login_button_leads_to_the_provider_and_back_to_next(tflow: FlowClient) -> None:
    html = tflow.get("/t/macros").get_data(as_text=True)
    href = re.search(r'class="big button" href="([^"]+)"', html)
    assert href is not None
    authorize = tflow.client.get(href.group(1).replace("&amp;", "&"))
    assert authorize.status_code == 302
    done = tflow.callback(tflow.authorize(authorize.headers["Location"]))
    assert done.headers["Location"] == "/dashboard"


def test_logout_form_signs_out_with_its_own_csrf_token(
    tflow: FlowClient, sandbox: SandboxServer
) -> None:
    tflow.login()
    html = tflow.get("/t/macros").get_data(as_text=True)
    (token,) = _csrf_values(html)
    assert tflow.get("/t/globals").get_data(as_text=True).count("logged_in=True") == 1
    response = tflow.post("/spark/logout", data={"spark_csrf_token": token})
    assert response.status_code == 302
    assert "logged_in=False" in tflow.get("/t/globals").get_data(as_text=True)
    assert sandbox.counters()["revocations"] == 1


def test_logout_form_without_the_token_is_refused(tflow: FlowClient) -> None:
    tflow.login()
    assert tflow.post("/spark/logout", data={"spark_csrf_token": "forged"}).status_code == 400
    assert "logged_in=True" in tflow.get("/t/globals").get_data(as_text=True)


def test_revoke_form_disconnects(tflow: FlowClient, sandbox: SandboxServer) -> None:
    tflow.login()
    (token,) = _csrf_values(tflow.get("/t/macros").get_data(as_text=True))
    assert tflow.post("/spark/revoke", data={"spark_csrf_token": token}).status_code == 302
    assert "logged_in=False" in tflow.get("/t/globals").get_data(as_text=True)
    assert sandbox.counters()["revocations"] == 2  # the access and the refresh token


def test_helpers_follow_the_url_prefix(config: dict[str, Any], sandbox: SandboxServer) -> None:
    app = make_app({**config, "SPARK_URL_PREFIX": "/auth/flexmls"})

    @app.get("/t/macros")
    def macros_page() -> str:
        return render_template_string(MACROS)

    html = app.test_client().get("/t/macros").get_data(as_text=True)
    assert 'href="/auth/flexmls/login"' in html
    assert 'action="/auth/flexmls/logout"' in html
    assert 'action="/auth/flexmls/revoke"' in html


def test_templates_render_outside_a_request(tapp: Flask) -> None:
    """An e-mail rendered by a background job sees nobody signed in, not an error."""
    with tapp.app_context():
        text = render_template_string("{{ spark_logged_in }} {{ spark_user.name or 'nobody' }}")
    assert text == "False nobody"
