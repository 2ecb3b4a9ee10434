"""The sandbox's home page: the URL the demo prints is a guide, not a bare 404."""

from __future__ import annotations

import html

import requests

from flask_spark.sandbox import MEMBERS, SandboxServer


def test_home_page_lists_members_endpoints_faults_and_docs(sandbox: SandboxServer) -> None:
    sandbox.faults(rate_limit_next=3)
    response = requests.get(sandbox.url + "/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = html.unescape(response.text)
    for member in MEMBERS:
        assert member.name in page
        assert member.id in page
        assert member.username in page
    assert f"export SPARK_ISSUER={sandbox.issuer}" in page
    assert f"export SPARK_CLIENT_ID={sandbox.client_id}" in page
    for path in (
        "/.well-known/openid-configuration",
        "/openid/authorize",
        "/openid/token",
        "/v1/my/account",
        "/v1/listings/<listing_id>",
        "/Reso/OData/{Property,Member,Office",
        "/photos/<listing_key>/<order>.svg",
        "/_sandbox/faults",
    ):
        assert f"<code>{path}" in page, path
    # Every fault switch, with its current value.
    assert "<td><code>rate_limit_next</code></td><td><code>3</code></td>" in page
    assert "<code>discovery_issuer</code>" in page
    assert 'href="https://github.com/flask-spark/flask-spark/blob/main/docs/sandbox.rst"' in page
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in page
