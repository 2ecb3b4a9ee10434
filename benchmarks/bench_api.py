"""Benchmark: Spark API calls through flask-spark's client, and the cost of the token record.

Run from the repository root::

    python benchmarks/bench_api.py            # about 10-20 s
    python benchmarks/bench_api.py --calls 1000

It starts a real redis-server and the sandbox, signs in through the real flow, then prints:

1. GET throughput of ``spark_api`` (one pooled keep-alive HTTP session per process, the token read
   from Redis and decrypted on every call) against the same client opening a fresh HTTP
   connection for every call, and their ratio. Measured against the sandbox as shipped (werkzeug's
   development server, which answers ``Connection: close`` to every request, so no client can
   reuse a connection there) and against the same sandbox app served by gunicorn (gthread, with
   keep-alive, as a production API server would).
2. The per-call cost of reading and decrypting the token record (Redis HGET + Fernet + JSON), in
   microseconds, measured with ``timeit``.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import os
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask

from flask_spark import SparkAuth
from flask_spark.core.api import SparkAPI
from flask_spark.core.http import pooled_session
from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.sandbox.app import create_sandbox_app
from flask_spark.testing.redis_server import RedisServer


class FreshConnections:
    """Instead of the pooled session: a new ``requests.Session`` (a new connection) per call."""

    headers = requests.utils.default_headers()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        # Built like the app's pool (the environment's proxy and CA bundle for the host), so
        # that only the connection handling differs.
        with pooled_session(hosts=[str(request.url)]) as session:
            return session.send(request, **kwargs)


def make_app(sandbox_url: str, redis_url: str) -> Flask:
    app = Flask("bench")
    app.config.update(
        TESTING=True,
        SECRET_KEY="bench",
        SPARK_CLIENT_ID="sandbox-client",
        SPARK_CLIENT_SECRET="sandbox-secret",
        SPARK_ISSUER=sandbox_url,
        SPARK_API_BASE_URL=sandbox_url + "/v1/",
        SPARK_RESO_BASE_URL=sandbox_url + "/Reso/OData/",
        SPARK_TOKEN_KEYS=[Fernet.generate_key().decode()],
        SPARK_REDIS_URL=redis_url,
        SPARK_USER_AGENT="flask-spark-bench",
        SPARK_KEY_PREFIX=f"bench{uuid.uuid4().hex[:8]}:",
    )
    SparkAuth(app)
    return app


def sign_in(app: Flask) -> str:
    """The real sign-in (our /login, the sandbox's form, our /callback); the session id."""
    browser = app.test_client()
    start = browser.get("/spark/login")
    form = requests.post(
        start.headers["Location"],
        data={"member": MEMBERS[0].id, "consent": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    callback = urlsplit(form.headers["Location"])
    done = browser.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 302, done.get_data(as_text=True)
    cookie = browser.get_cookie("session")
    assert cookie is not None
    return cookie.value


def throughput(call: Callable[[], Any], calls: int) -> float:
    """Calls per second, best of three rounds (after a warm-up)."""
    for _ in range(10):
        call()
    rates = []
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(calls):
            call()
        rates.append(calls / (time.perf_counter() - began))
    return max(rates)


def bench_server(label: str, sandbox_url: str, redis_url: str, calls: int) -> dict[str, Any]:
    app = make_app(sandbox_url, redis_url)
    sid = sign_in(app)
    state = app.extensions["spark.state"]
    pooled = app.extensions["spark.state"].api_for(sid)  # what spark_api is in a view
    fresh = SparkAPI(
        base_url=state.config.api_base_url,
        user_agent=state.config.user_agent,
        tokens=pooled.tokens,  # same token source: only the connection handling differs
        http=FreshConnections(),  # type: ignore[arg-type,unused-ignore]
        timeout=pooled.timeout,
    )
    assert pooled.get("my/account").first()["Id"] == MEMBERS[0].id
    assert fresh.get("my/account").first()["Id"] == MEMBERS[0].id
    pooled_rate = throughput(lambda: pooled.get("my/account"), calls)
    fresh_rate = throughput(lambda: fresh.get("my/account"), calls)
    return {
        "label": label,
        "pooled": pooled_rate,
        "fresh": fresh_rate,
        "ratio": pooled_rate / fresh_rate,
        "state": state,
        "sid": sid,
    }


class _WSGIHandler(BaseHTTPRequestHandler):
    """A minimal HTTP/1.1 keep-alive WSGI gateway (werkzeug's dev server always closes)."""

    protocol_version = "HTTP/1.1"
    app: Any = None
    scheme = "http"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _wsgi(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        host, port = self.headers.get("Host", "127.0.0.1:0").rsplit(":", 1)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, encoding="latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(length),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            if name.lower() not in ("content-type", "content-length"):
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list[Any] = []

        def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        result = self.app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        code, _, reason = started[0].partition(" ")
        self.send_response(int(code), reason)
        for name, value in started[1]:
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _wsgi

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (and its key), written to ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def keep_alive_sandbox(tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """The sandbox app behind a keep-alive HTTP/1.1 server (HTTPS when ``tls`` is given)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WSGIHandler)
    server.daemon_threads = True
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    handler = type("Handler", (_WSGIHandler,), {"app": create_sandbox_app(url), "scheme": scheme})
    server.RequestHandlerClass = handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def token_record_cost(state: Any, sid: str, number: int) -> dict[str, float]:
    """Microseconds per call: the whole load, Redis HGET alone, decrypt alone."""
    store = state.tokens
    key = store.key(sid)
    blob = store.redis.hget(key, "d")

    def per_call(func: Callable[[], Any]) -> float:
        runs = timeit.repeat(func, number=number, repeat=5)
        return statistics.median(runs) / number * 1e6

    return {
        "load (HGET + decrypt)": per_call(lambda: store.load(sid)),
        "Redis HGET only": per_call(lambda: store.redis.hget(key, "d")),
        "Fernet decrypt + JSON only": per_call(lambda: store.vault.open(blob, sid)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="GET calls per round (3 rounds)")
    parser.add_argument("--number", type=int, default=2000, help="timeit loops per repeat")
    args = parser.parse_args()

    redis_server = RedisServer().start()
    sandbox = SandboxServer().start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = self_signed(Path(tmp))
            os.environ["REQUESTS_CA_BUNDLE"] = str(cert)  # trust the throwaway certificate
            rows.append(
                bench_server(
                    "werkzeug dev server (shipped)", sandbox.url, redis_server.url, args.calls
                )
            )
            with keep_alive_sandbox() as url:
                rows.append(bench_server("keep-alive HTTP/1.1", url, redis_server.url, args.calls))
            with keep_alive_sandbox((cert, key)) as url:
                rows.append(
                    bench_server("keep-alive HTTPS (TLS 1.3)", url, redis_server.url, args.calls)
                )
        costs = token_record_cost(rows[0]["state"], rows[0]["sid"], args.number)
    finally:
        sandbox.stop()
        redis_server.stop()

    print()
    print("GET /v1/my/account, single thread, best of 3 rounds of", args.calls, "calls")
    print(f"{'server':<32} {'spark_api (pooled)':>20} {'fresh conn/call':>17} {'ratio':>7}")
    for row in rows:
        print(
            f"{row['label']:<32} {row['pooled']:>14.0f} req/s {row['fresh']:>11.0f} req/s"
            f" {row['ratio']:>6.2f}x"
        )
    print()
    print(f"Token record, per call (median of 5 x {args.number})")
    for name, micros in costs.items():
        print(f"  {name:<30} {micros:>8.1f} us")


if __name__ == "__main__":
    main()
