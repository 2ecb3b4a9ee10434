"""Run the whole demo on loopback: Redis, the Spark Platform sandbox, and My Flexmls.

    python examples/demo.py            # what ./scripts/demo runs

Ports: ``PORT`` (the app, default 5000) and ``SANDBOX_PORT`` (the sandbox, default 5001) in the
environment, or ``--port`` and ``--sandbox-port``. With ``SPARK_CLIENT_ID`` set in the
environment the sandbox is skipped and the app talks to the real Spark Platform (set
SPARK_CLIENT_SECRET, SPARK_TOKEN_KEYS, SPARK_REDIS_URL too).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from myflexmls import create_app

from flask_spark.core.errors import SparkConfigError
from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer

HOST = "127.0.0.1"


def env_port(name: str, default: int) -> int:
    """A port from the environment variable ``name``; a bad value stops with one line."""
    value = os.environ.get(name, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        sys.exit(f"demo: {name}={value!r} is not a port number (1 to 65535)")
    return int(value)


def check_free(port: int, what: str, variable: str) -> None:
    """Stop with one line when ``port`` is taken, saying how to pick another."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            airplay = " (on macOS, AirPlay Receiver listens on 5000)" if port == 5000 else ""
            sys.exit(
                f"demo: port {port} for the {what} is in use{airplay}; choose another, e.g. "
                f"{variable}={port + 50} ./scripts/demo"
            )


def main() -> None:
    # A plain `kill` (SIGTERM) must stop Redis and the sandbox too, not orphan them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        default=env_port("PORT", 5000),
        help="the app's port (default: $PORT or 5000)",
    )
    parser.add_argument(
        "--sandbox-port",
        type=int,
        default=env_port("SANDBOX_PORT", 5001),
        help="the sandbox's port (default: $SANDBOX_PORT or 5001)",
    )
    parser.add_argument(
        "--access-token-lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="the sandbox's access token lifetime (default: 3600, so that an afternoon's demo "
        "sees a refresh; the sandbox alone defaults to Spark's 86400)",
    )
    args = parser.parse_args()
    use_sandbox = not os.environ.get("SPARK_CLIENT_ID")
    check_free(args.port, "app", "PORT")
    if use_sandbox:
        check_free(args.sandbox_port, "sandbox", "SANDBOX_PORT")

    config: dict[str, object] = {}
    redis = None
    if not os.environ.get("SPARK_REDIS_URL"):
        try:
            redis = RedisServer(die_with_parent=True).start()  # gone even if the demo is killed
        except SparkConfigError as exc:
            sys.exit(f"demo: {exc.message}")
        config["SPARK_REDIS_URL"] = redis.url
    sandbox = None
    if use_sandbox:
        sandbox = SandboxServer(
            port=args.sandbox_port, access_token_lifetime=args.access_token_lifetime
        ).start()
        config.update(
            SPARK_CLIENT_ID=sandbox.client_id,
            SPARK_CLIENT_SECRET=sandbox.client_secret,
            SPARK_ISSUER=sandbox.issuer,
            SPARK_API_BASE_URL=sandbox.url + "/v1/",
            SPARK_RESO_BASE_URL=sandbox.url + "/Reso/OData/",
        )
    app = create_app({"DEBUG": True, **config})
    url = f"http://{HOST}:{args.port}/"
    print(f"\n  My Flexmls is running: open {url}", flush=True)
    if sandbox:
        print(
            f"  Spark Platform sandbox: {sandbox.url}/ (sign in as any demo member; access "
            f"tokens last {args.access_token_lifetime} s)",
            flush=True,
        )
    print(
        "  Debug mode is on: errors show Werkzeug's debugger in the browser. The reloader is\n"
        "  off: restart the demo after changing code.\n"
        f"  Ports: PORT={args.port} SANDBOX_PORT={args.sandbox_port} (set them to change them)."
        "\n  Press Ctrl-C to stop.\n",
        flush=True,
    )
    try:
        app.run(host=HOST, port=args.port, debug=True, use_reloader=False)
    finally:
        if sandbox:
            sandbox.stop()
        if redis:
            redis.stop()


if __name__ == "__main__":
    main()
