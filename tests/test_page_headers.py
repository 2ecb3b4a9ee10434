"""flask-spark's own pages cannot be framed by another site and are not sniffed, pages that
show the signed-in user are not stored by caches, and the security-headers recipe of the docs
works (issue 19, points 2 and 7)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from flask import Flask, render_template_string

from flask_spark import spark_user
from flask_spark.sandbox import SandboxServer
from flask_spark.testing import login_test_client

from .conftest import make_app

REPO = Path(__file__).resolve().parent.parent
NOT_FRAMED = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def assert_not_framed(headers: Any) -> None:
    for name, value in NOT_FRAMED.items():
        assert headers.get(name) == value, name


def test_error_pages_cannot_be_framed(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/spark/callback?code=x&state=unknown", headers={"Accept": "text/html"})
    assert page.status_code == 400
    assert page.mimetype == "text/html"
    assert_not_framed(page.headers)
    as_json = client.get(
        "/spark/callback?code=x&state=unknown", headers={"Accept": "application/json"}
    )
    assert as_json.headers["X-Content-Type-Options"] == "nosniff"


def page_app(config: dict[str, Any]) -> Flask:
    app = make_app(config)

    @app.get("/hello")
    def hello() -> str:  # the app's own page, not protected, showing who is signed in
        return render_template_string("<p>{{ spark_user.name or 'Guest' }}</p>")

    @app.get("/about")
    def about() -> str:  # shows nobody
        return render_template_string("<p>About us{% if spark_logged_in %}, again{% endif %}</p>")

    @app.get("/mine")
    def mine() -> Any:  # the view chose its own caching
        return f"<p>{spark_user.name}</p>", 200, {"Cache-Control": "private, max-age=60"}

    return app


def test_pages_that_show_the_signed_in_user_are_not_stored(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    client = page_app(config).test_client()
    for path in ("/", "/hello", "/about"):  # anonymous: the app's business
        assert "Cache-Control" not in client.get(path).headers, path
    login_test_client(client, sandbox=sandbox)
    for path in ("/", "/hello"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["Cache-Control"] == "no-store", path
    assert "Cache-Control" not in client.get("/about").headers
    assert client.get("/mine").headers["Cache-Control"] == "private, max-age=60"


def test_the_security_headers_recipe(config: dict[str, Any]) -> None:
    path = REPO / "docs" / "_examples" / "security_headers.py"
    spec = importlib.util.spec_from_file_location("docs_security_headers", path)
    assert spec is not None
    assert spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    app = make_app(config)
    recipe.add_security_headers(app)
    client = app.test_client()
    home = client.get("/")
    assert home.headers["Content-Security-Policy"] == recipe.CSP
    assert home.headers["X-Frame-Options"] == "DENY"
    assert home.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in home.headers  # plain HTTP: HSTS means nothing
    secure = client.get("/", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    error = client.get("/spark/callback?code=x&state=unknown", headers={"Accept": "text/html"})
    assert_not_framed(error.headers)  # flask-spark's own headers are kept
