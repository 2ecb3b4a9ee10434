"""Run the whole demo on loopback: Redis, the Spark Platform sandbox, and My Flexmls.

    python examples/demo.py            # what ./scripts/demo runs

With ``SPARK_CLIENT_ID`` set in the environment the sandbox is skipped and the app talks to the
real Spark Platform (set SPARK_CLIENT_SECRET, SPARK_TOKEN_KEYS, SPARK_REDIS_URL too).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from myflexmls import create_app

from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer


def main() -> None:
    # A plain `kill` (SIGTERM) must stop Redis and the sandbox too, not orphan them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 5000)))
    parser.add_argument("--sandbox-port", type=int, default=5001)
    parser.add_argument("--access-token-lifetime", type=int, default=3600)
    args = parser.parse_args()

    config: dict[str, object] = {}
    redis = None
    if not os.environ.get("SPARK_REDIS_URL"):
        redis = RedisServer().start()
        config["SPARK_REDIS_URL"] = redis.url
    sandbox = None
    if not os.environ.get("SPARK_CLIENT_ID"):
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
    app.debug = True
    url = f"http://127.0.0.1:{args.port}/"
    print(f"\n  My Flexmls is running: open {url}", flush=True)
    if sandbox:
        print(f"  Spark Platform sandbox: {sandbox.url} (sign in as any demo member)", flush=True)
    print("  Press Ctrl-C to stop.\n", flush=True)
    try:
        app.run(host="127.0.0.1", port=args.port, debug=False, use_reloader=False)
    finally:
        if sandbox:
            sandbox.stop()
        if redis:
            redis.stop()


if __name__ == "__main__":
    main()
