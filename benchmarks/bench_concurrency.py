"""Benchmark: several API calls at once, against an API that takes 100 ms per answer.

Run from the repository root::

    python benchmarks/bench_concurrency.py              # about a minute
    python benchmarks/bench_concurrency.py --rounds 15 --delay 0.2

It starts a real redis-server and the sandbox, arms the sandbox's ``api_delay`` fault (every
Spark API and RESO Web API answer waits ``--delay`` seconds), signs in through the real flow and
times whole requests to protected views through the Flask test client: one call, four calls one
after another, the same four with ``spark_api.gather`` and in an ``async def`` view under
``asyncio.gather``, one page of listings, 60 records at 25 a page (page after page, and with
``paginate``), and the example app's dashboard with its calls one after another (before) and at
once (after). Rounds are interleaved (every view once per round, in turn) and the median of the
rounds is reported, with its ratio to one call (or one page).

A last section runs the four calls without the delay: what the worker threads cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_api import make_app, sign_in
from flask import Flask
from flask.testing import FlaskClient

from flask_spark import spark_api, spark_login_required
from flask_spark.core.api import SparkAPI
from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PAGE = {"_limit": 25, "_pagination": 1, "_orderby": "-ListPrice"}


def four_calls() -> list[Callable[[], Any]]:
    return [
        lambda: spark_api.get("my/account"),
        lambda: spark_api.get("listings", params={"_limit": 5}),
        lambda: spark_api.reso.get("Property", params={"$top": 5}),
        lambda: spark_api.get("savedsearches"),
    ]


def add_views(app: Flask) -> Flask:
    @app.get("/one")
    @spark_login_required
    def one() -> str:
        spark_api.get("my/account")
        return "ok"

    @app.get("/one-by-one")
    @spark_login_required
    def one_by_one() -> str:
        for call in four_calls():
            call()
        return "ok"

    @app.get("/gather")
    @spark_login_required
    def gather() -> str:
        spark_api.gather(*four_calls())
        return "ok"

    @app.get("/async")
    @spark_login_required
    async def in_async_view() -> str:
        await asyncio.gather(
            spark_api.aget("my/account"),
            spark_api.aget("listings", params={"_limit": 5}),
            spark_api.reso.aget("Property", params={"$top": 5}),
            spark_api.aget("savedsearches"),
        )
        return "ok"

    @app.get("/page")
    @spark_login_required
    def page() -> str:
        assert len(spark_api.get("listings", params={**PAGE, "_page": 1})) == 25
        return "ok"

    @app.get("/sixty-page-after-page")
    @spark_login_required
    def sixty_page_after_page() -> str:
        records = []
        for number in range(1, 4):
            records += spark_api.get("listings", params={**PAGE, "_page": number}).results
        assert len(records[:60]) == 60
        return "ok"

    @app.get("/sixty")
    @spark_login_required
    def sixty() -> str:
        records = spark_api.paginate("listings", params={"_orderby": "-ListPrice"}, max_records=60)
        assert len(list(records)) == 60
        return "ok"

    return app


def example_app(config: dict[str, Any]) -> Flask:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from myflexmls import create_app
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return create_app(config)


def signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.set_cookie("session", sign_in(app))
    return client


def one_after_another(self: SparkAPI, *calls: Callable[[], Any]) -> list[Any]:
    """``gather`` as it was before: each call waits for the one before it."""
    return [call() for call in calls]


def measure(cases: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each case over ``rounds`` interleaved rounds (after a warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for case in cases.values():
        case()
    for _ in range(rounds):
        for name, case in cases.items():
            began = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in times.items()}


def get(client: FlaskClient, path: str) -> Callable[[], None]:
    def case() -> None:
        response = client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]

    return case


def report(title: str, rows: list[tuple[str, float, float | None, str]]) -> None:
    print()
    print(title)
    print(f"  {'':<44} {'median':>9} {'ratio':>7}   goal")
    for label, seconds, ratio, goal in rows:
        shown = f"{ratio:>6.2f}x" if ratio is not None else " " * 7
        print(f"  {label:<44} {seconds * 1000:>6.1f} ms {shown}   {goal}")


def verdict(ratio: float, goal: float) -> str:
    return f"<= {goal}x: {'met' if ratio <= goal else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per view")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds per API answer")
    parser.add_argument("--calls", type=int, default=300, help="rounds without the delay")
    args = parser.parse_args()

    redis_server = RedisServer().start()
    sandbox = SandboxServer().start()
    try:
        app = add_views(make_app(sandbox.url, redis_server.url))
        client = signed_in(app)
        config = {k: v for k, v in app.config.items() if k.startswith("SPARK_")}
        example = example_app({**config, "SECRET_KEY": "bench", "TESTING": True})
        browser = signed_in(example)
        gather = SparkAPI.gather

        def dashboard_one_by_one() -> None:
            SparkAPI.gather = one_after_another  # type: ignore[method-assign]
            try:
                get(browser, "/dashboard")()
            finally:
                SparkAPI.gather = gather  # type: ignore[method-assign]

        sandbox.faults(api_delay=args.delay)
        timed = measure(
            {
                "one": get(client, "/one"),
                "one-by-one": get(client, "/one-by-one"),
                "gather": get(client, "/gather"),
                "async": get(client, "/async"),
                "page": get(client, "/page"),
                "sixty-page-after-page": get(client, "/sixty-page-after-page"),
                "sixty": get(client, "/sixty"),
                "dashboard-before": dashboard_one_by_one,
                "dashboard": get(browser, "/dashboard"),
            },
            args.rounds,
        )
        sandbox.faults(api_delay=None)
        per = measure(
            {name: get(client, "/" + name) for name in ("one-by-one", "gather", "async")},
            args.calls,
        )
    finally:
        sandbox.stop()
        redis_server.stop()

    one, page = timed["one"], timed["page"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nAPI answers take {args.delay * 1000:.0f} ms; median of {args.rounds} interleaved")
    print(f"rounds of whole requests (Flask test client); load average {load}")
    report(
        "Four independent calls (account, listings, RESO Property, saved searches)",
        [
            ("one call", one, 1.0, ""),
            ("four, one after another", timed["one-by-one"], timed["one-by-one"] / one, ""),
            *(
                (label, timed[key], timed[key] / one, verdict(timed[key] / one, 1.3))
                for label, key in (
                    ("four with spark_api.gather (sync view)", "gather"),
                    ("four with aget + asyncio.gather (async)", "async"),
                )
            ),
        ],
    )
    after_another = timed["sixty-page-after-page"]
    report(
        "60 records at 25 a page",
        [
            ("one page", page, 1.0, ""),
            ("page after page (3 calls)", after_another, after_another / page, ""),
            (
                "paginate(max_records=60)",
                timed["sixty"],
                timed["sixty"] / page,
                verdict(timed["sixty"] / page, 1.5),
            ),
        ],
    )
    before, after = timed["dashboard-before"], timed["dashboard"]
    report(
        "The example's dashboard (account, top homes, the member's listings)",
        [
            ("calls one after another (before)", before, None, ""),
            ("calls at once, spark_api.gather (after)", after, after / before, "of before"),
        ],
    )
    report(
        f"No delay: what the worker threads cost (median of {args.calls} interleaved rounds)",
        [
            ("four, one after another", per["one-by-one"], 1.0, ""),
            ("four with spark_api.gather", per["gather"], per["gather"] / per["one-by-one"], ""),
            ("four with aget + asyncio.gather", per["async"], per["async"] / per["one-by-one"], ""),
        ],
    )


if __name__ == "__main__":
    main()
