"""Protected pages are not cacheable (issue 12, point 5): ``Cache-Control: no-store`` on the
answers of ``@spark_login_required`` views, unless the view chose its own."""

from __future__ import annotations

from typing import Any

from flask import Flask

from flask_spark import spark_login_required
from flask_spark.sandbox import SandboxServer
from flask_spark.testing import login_test_client

from .conftest import make_app


def app_with_views(config: dict[str, Any], **options: Any) -> Flask:
    app = make_app(config, **options)

    @app.get("/cached")
    @spark_login_required
    def cached() -> Any:
        return "mine", 200, {"Cache-Control": "private, max-age=60"}

    return app


def test_protected_answers_carry_no_store(config: dict[str, Any], sandbox: SandboxServer) -> None:
    app = app_with_views(config)
    client = app.test_client()
    assert "Cache-Control" not in client.get("/").headers  # unprotected: the app's business
    signed_out = client.get("/called")
    assert signed_out.status_code == 302
    login_test_client(client, sandbox=sandbox)
    for path in ("/called", "/dashboard"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["Cache-Control"] == "no-store", path
    assert client.get("/cached").headers["Cache-Control"] == "private, max-age=60"
