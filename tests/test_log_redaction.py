"""Access logs never show the sign-in callback's ``code`` and ``state`` (issue 12, point 7),
and show the app's own ``code`` and ``state`` parameters as they are (issue 17).

A real werkzeug server and a real gunicorn serve an app with flask-spark; a callback URL with
a recognisable code and state is requested; their access logs (werkzeug's default format,
gunicorn's default and a format with the query-string atom) are read back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from flask_spark.core.redaction import ROUTES, RedactSecrets, redact
from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer

from .concurrency_app import environment
from .conftest import FERNET_KEY
from .gunicorn_server import GunicornServer

CODE, STATE = "SECRETCODE4xQz", "SECRETSTATE9pLm"
CALLBACK = f"/spark/callback?code={CODE}&state={STATE}&iss=x"
SEARCH = "/search?state=CA&code=94110"


def assert_masked(text: str) -> None:
    assert "/spark/callback" in text, text
    assert CODE not in text, text
    assert STATE not in text, text
    assert "code=[redacted]" in text, text


def test_werkzeug_access_log(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            answer = requests.get(f"http://127.0.0.1:{server.port}{CALLBACK}", timeout=30)
            requests.get(f"http://127.0.0.1:{server.port}{SEARCH}", timeout=30)
    finally:
        server.shutdown()
        thread.join()
    assert answer.status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len(lines) == 2
    assert_masked(lines[0])
    assert f"GET {SEARCH} HTTP/1.1" in lines[1]


@pytest.fixture
def gunicorn_log(
    sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> Iterator[tuple[GunicornServer, Path]]:
    access_log = tmp_path / "access.log"
    env = environment(sandbox.url, redis_server.url, key_prefix, FERNET_KEY)
    server = GunicornServer(
        "tests.concurrency_app:create_app()",
        workers=1,
        env=env,
        args=["--access-logfile", str(access_log)],
    )
    try:
        yield server.start("/health"), access_log
    finally:
        server.stop()


def test_gunicorn_access_log(gunicorn_log: tuple[GunicornServer, Path]) -> None:
    server, access_log = gunicorn_log
    answer = requests.get(server.url + CALLBACK, timeout=30)
    assert answer.status_code == 400
    requests.get(server.url + SEARCH, timeout=30)
    # gunicorn logs a request after answering it; its one sync worker takes the next request
    # only once that is done: when /health has answered, the callback's line is written.
    assert requests.get(server.url + "/health", timeout=30).status_code == 200
    lines = access_log.read_text().splitlines()
    assert_masked("\n".join(line for line in lines if "/spark/callback" in line))
    assert any(f"GET {SEARCH} HTTP/1.1" in line for line in lines), lines


def test_gunicorn_atoms_are_masked_in_any_format() -> None:
    """gunicorn passes a mapping of atoms: the query string (%(q)s) is masked too, when its
    path (%(U)s) is flask-spark's."""
    from gunicorn.glogging import SafeAtoms

    ROUTES.add("/spark/callback")  # as SparkAuth(app) registers its routes

    def logged(path: str, query: str) -> str:
        atoms = SafeAtoms({"r": f"GET {path}?{query} HTTP/1.1", "q": query, "U": path})
        record = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, "%(r)s %(q)s", (), None)
        record.args = atoms
        assert RedactSecrets().filter(record)
        return record.getMessage()

    masked = logged("/spark/callback", CALLBACK.split("?")[1])
    assert_masked(masked)
    assert masked.endswith("code=[redacted]&state=[redacted]&iss=x")
    assert logged("/search", "state=CA&code=94110").endswith(" state=CA&code=94110")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "GET /spark/callback?state=abc&code=def HTTP/1.1",
            "GET /spark/callback?state=[redacted]&code=[redacted] HTTP/1.1",
        ),
        (
            "GET /app/spark/callback?code=1&iss=x HTTP/1.1",  # mounted under a prefix
            "GET /app/spark/callback?code=[redacted]&iss=x HTTP/1.1",
        ),
        ("https://h/spark/callback?x=1;code=2", "https://h/spark/callback?x=1;code=[redacted]"),
        ("GET /search?state=CA&code=94110 HTTP/1.1", "GET /search?state=CA&code=94110 HTTP/1.1"),
        ("GET /nospark/callback?code=1", "GET /nospark/callback?code=1"),
        ("code=1", "code=1"),
        ("GET /spark/callback?xcode=1&mycode=2", "GET /spark/callback?xcode=1&mycode=2"),
        ("DELETE /v1/oauth2/token/abc123 HTTP/1.1", "DELETE /v1/oauth2/token/[redacted] HTTP/1.1"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line, ["/spark/callback"]) == expected
