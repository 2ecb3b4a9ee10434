"""Access logs never show the sign-in callback's ``code`` and ``state`` (issue 12, point 7).

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

from flask_spark.core.redaction import RedactSecrets, redact
from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer

from .concurrency_app import environment
from .conftest import FERNET_KEY
from .gunicorn_server import GunicornServer

CODE, STATE = "SECRETCODE4xQz", "SECRETSTATE9pLm"
CALLBACK = f"/spark/callback?code={CODE}&state={STATE}&iss=x"


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
    finally:
        server.shutdown()
        thread.join()
    assert answer.status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert lines
    assert_masked("\n".join(lines))


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
        yield server.start("/health", timeout=60), access_log
    finally:
        server.stop()


def test_gunicorn_access_log(gunicorn_log: tuple[GunicornServer, Path]) -> None:
    server, access_log = gunicorn_log
    answer = requests.get(server.url + CALLBACK, timeout=30)
    assert answer.status_code == 400
    # gunicorn logs a request after answering it; its one sync worker takes the next request
    # only once that is done: when /health has answered, the callback's line is written.
    assert requests.get(server.url + "/health", timeout=30).status_code == 200
    assert_masked(access_log.read_text())


def test_gunicorn_atoms_are_masked_in_any_format() -> None:
    """gunicorn passes a mapping of atoms: the query string (%(q)s) is masked too."""
    from gunicorn.glogging import SafeAtoms

    atoms = SafeAtoms(
        {"r": f"GET {CALLBACK} HTTP/1.1", "q": CALLBACK.split("?")[1], "U": "/spark/callback"}
    )
    record = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, "%(r)s %(q)s", (), None)
    record.args = atoms
    assert RedactSecrets().filter(record)
    assert_masked(record.getMessage())
    assert record.getMessage().endswith("code=[redacted]&state=[redacted]&iss=x")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "GET /cb?state=abc&code=def HTTP/1.1",
            "GET /cb?state=[redacted]&code=[redacted] HTTP/1.1",
        ),
        ("code=1", "code=[redacted]"),
        ("GET /?xcode=1&mycode=2", "GET /?xcode=1&mycode=2"),
        ("DELETE /v1/oauth2/token/abc123 HTTP/1.1", "DELETE /v1/oauth2/token/[redacted] HTTP/1.1"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected
