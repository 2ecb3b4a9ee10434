"""``flask spark rotate-keys``: re-encrypt every token record with the first key of
SPARK_TOKEN_KEYS, by SCAN, rerunnable, and safe while the app refreshes tokens under it.

The deployment it supports: put the new key first (``[new, old]``) everywhere, run the command,
then drop the old key. Real Redis and the sandbox over real HTTP.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
from click.testing import Result
from cryptography.fernet import Fernet, InvalidToken
from flask import Flask

from flask_spark import SparkAuth
from flask_spark.core.tokens import TokenSet, TokenStore, TokenVault
from flask_spark.sandbox import MEMBERS, SandboxServer

from .conftest import make_app
from .helpers import FlowClient

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
_COUNTS = re.compile(r"rotated (\d+), skipped (\d+) .*unreadable (\d+)")


# -- helpers ---------------------------------------------------------------------------------


def rotate(app: Flask) -> tuple[int, int, int]:
    """Run ``flask spark rotate-keys``; return (rotated, skipped, unreadable) as printed."""
    result: Result = app.test_cli_runner().invoke(args=["spark", "rotate-keys"])
    assert result.exit_code == 0, result.output
    found = _COUNTS.search(result.output)
    assert found, result.output
    rotated, skipped, unreadable = (int(n) for n in found.groups())
    return rotated, skipped, unreadable


def records(client: redis.Redis, prefix: str) -> dict[str, bytes]:
    """Every token record's ciphertext under ``prefix``."""
    out: dict[str, bytes] = {}
    for key in client.scan_iter(match=prefix + "tok:*"):
        blob = client.hget(key, "d")
        assert isinstance(blob, bytes)
        out[key.decode()] = blob
    return out


def readable_by(key: str, blob: bytes) -> bool:
    try:
        Fernet(key).decrypt(base64.urlsafe_b64encode(blob))  # stored as the token's bytes
    except InvalidToken:
        return False
    return True


def signed_in_clients(app: Flask, sandbox: SandboxServer, count: int) -> list[FlowClient]:
    """``count`` browsers signed in (members taken in turn)."""
    clients = []
    for i in range(count):
        flow = FlowClient(app, sandbox)
        assert flow.login("/dashboard", member_id=MEMBERS[i % len(MEMBERS)].id).status_code == 302
        clients.append(flow)
    return clients


def same_browser(app: Flask, flow: FlowClient) -> FlowClient:
    """The browser of ``flow`` talking to ``app`` (another instance, after the key change)."""
    moved = FlowClient(app, flow.sandbox)
    cookie = flow.cookie()
    assert cookie
    moved.client.set_cookie("session", cookie)
    return moved


def fill(client: redis.Redis, prefix: str, key: str, count: int) -> None:
    """``count`` extra token records (other sessions) encrypted with ``key``."""
    store = TokenStore(client, TokenVault([key]), prefix)
    for i in range(count):
        sid = f"filler{i:05d}"
        store.create(
            TokenSet(
                access_token=f"a{i}", refresh_token=f"r{i}", subject=None, expires_at=0, sid=sid
            ),
            ttl=3600,
        )


@pytest.fixture
def old_app(config: dict[str, Any]) -> Flask:
    return make_app({**config, "SPARK_TOKEN_KEYS": [OLD]})


@pytest.fixture
def new_app(config: dict[str, Any]) -> Flask:
    return make_app({**config, "SPARK_TOKEN_KEYS": [NEW, OLD]})


# -- the command -------------------------------------------------------------------------------


def test_rotate_keys_reencrypts_every_record_with_the_first_key(
    old_app: Flask,
    new_app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    browsers = signed_in_clients(old_app, sandbox, 3)
    fill(redis_client, key_prefix, OLD, 40)
    stranger = Fernet.generate_key().decode()  # a record no configured key opens
    TokenStore(redis_client, TokenVault([stranger]), key_prefix).create(
        TokenSet(access_token="s", refresh_token=None, subject=None, expires_at=0, sid="foreign"),
        ttl=3600,
    )
    before = records(redis_client, key_prefix)
    assert len(before) == 44
    ttls = {k: redis_client.ttl(k) for k in before}

    assert rotate(new_app) == (43, 0, 1)

    after = records(redis_client, key_prefix)
    assert set(after) == set(before)  # nothing lost, nothing added
    foreign = f"{key_prefix}tok:{{foreign}}"
    assert after.pop(foreign) == before[foreign]  # unreadable: reported and left alone
    for key, blob in after.items():
        assert blob != before[key]
        assert readable_by(NEW, blob), key  # the first key alone opens every record
        assert not readable_by(OLD, blob), key
        assert 0 < redis_client.ttl(key) <= ttls[key]  # the absolute lifetime is kept
    # Every user is still signed in, through an app that only knows the new key.
    newest = make_app({**new_app.config, "SPARK_TOKEN_KEYS": [NEW]})
    for flow in browsers:
        assert same_browser(newest, flow).get("/dashboard").status_code == 200


def test_rotate_keys_is_safe_to_rerun(
    old_app: Flask,
    new_app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    signed_in_clients(old_app, sandbox, 2)
    fill(redis_client, key_prefix, OLD, 5)
    assert rotate(new_app) == (7, 0, 0)
    first = records(redis_client, key_prefix)
    assert rotate(new_app) == (0, 7, 0)
    assert records(redis_client, key_prefix) == first  # the second run wrote nothing


def test_rotate_keys_scans_and_never_uses_keys(
    old_app: Flask,
    new_app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    signed_in_clients(old_app, sandbox, 1)
    fill(redis_client, key_prefix, OLD, 30)
    marker = f"end-of-rotation-{key_prefix}"
    commands: list[str] = []
    with redis_client.monitor() as monitor:  # type: ignore[no-untyped-call]  # MONITOR is on before the command runs
        assert rotate(new_app) == (31, 0, 0)
        redis_client.echo(marker)
        while True:
            command = str(monitor.next_command()["command"])
            if command == f"ECHO {marker}":
                break
            commands.append(command)
    verbs = [c.split(" ", 1)[0].upper() for c in commands]
    assert "SCAN" in verbs
    assert "KEYS" not in verbs
    assert not any(v == "FLUSHDB" or v == "FLUSHALL" for v in verbs)


# -- while the app serves traffic ---------------------------------------------------------


def test_rotation_racing_a_refresh_keeps_the_refreshed_record(
    old_app: Flask,
    new_app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deterministic interleaving: a refresh writes between the command's read and its write.

    The command's write must not put the old (already rotated-away) refresh token back: it is
    compare-and-set on the record's version, so it rereads and finds the refreshed record.
    """
    (flow,) = signed_in_clients(old_app, sandbox, 1)
    browser = same_browser(new_app, flow)
    sid = browser.cookie()
    assert sid
    state = new_app.extensions["spark.state"]
    before = state.tokens.load(sid)
    assert before is not None

    original: Callable[[bytes], bytes] = state.vault.rotate
    raced: list[TokenSet] = []

    def rotate_after_a_refresh(blob: bytes) -> bytes:
        if not raced:  # the app refreshes this session right now, mid-rotation
            raced.append(state.manager.refresh(sid, stale=before))
        return original(blob)

    monkeypatch.setattr(state.vault, "rotate", rotate_after_a_refresh)
    rotated, skipped, unreadable = rotate(new_app)
    assert raced
    assert raced[0].version == before.version + 1
    assert (rotated + skipped, unreadable) == (1, 0)

    stored = state.tokens.load(sid)
    assert stored is not None
    assert stored.version == raced[0].version
    assert stored.refresh_token == raced[0].refresh_token != before.refresh_token
    blob = redis_client.hget(f"{key_prefix}tok:{{{key_prefix}session:{sid}}}", "d")
    assert isinstance(blob, bytes)
    assert readable_by(NEW, blob)
    assert not readable_by(OLD, blob)
    # The session keeps working through its next refresh (a stale refresh token would be
    # detected as reuse by the provider and end the session).
    sandbox.expire_tokens()
    assert browser.get("/dashboard").status_code == 200
    counters = sandbox.counters()
    assert counters["refreshes"] == 2
    assert counters["refresh_reuse"] == 0
    assert counters["refresh_failures"] == 0


def test_rotate_keys_while_traffic_refreshes_tokens(
    old_app: Flask,
    config: dict[str, Any],
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    """Users keep calling the API (each call refreshing their token) while the command runs.

    Whether a refresh lands inside the command's read-to-write window of one record is up to
    the scheduler here; ``test_rotation_racing_a_refresh_keeps_the_refreshed_record`` forces
    that interleaving.
    """
    # Every API call refreshes first: tokens live 60 s and are refreshed within 120 s of expiry.
    sandbox.configure(access_token_lifetime=60)
    browsers = signed_in_clients(old_app, sandbox, 6)
    fill(redis_client, key_prefix, OLD, 300)  # a long scan, to overlap with the traffic
    serving = make_app({**config, "SPARK_TOKEN_KEYS": [NEW, OLD]}, refresh_skew=120)
    users = [same_browser(serving, flow) for flow in browsers]

    started = threading.Barrier(len(users) + 1)
    stop = threading.Event()
    statuses: list[list[int]] = [[] for _ in users]
    errors: list[BaseException] = []

    def traffic(index: int, flow: FlowClient) -> None:
        try:
            statuses[index].append(flow.get("/dashboard").status_code)
            started.wait(timeout=30)
            while not stop.is_set():
                statuses[index].append(flow.get("/dashboard").status_code)
            statuses[index].append(flow.get("/dashboard").status_code)  # one after the command
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            started.abort()

    threads = [
        threading.Thread(target=traffic, args=(i, flow), daemon=True)
        for i, flow in enumerate(users)
    ]
    for thread in threads:
        thread.start()
    started.wait(timeout=30)  # every user has made a call; the command starts under traffic
    refreshes_before = sandbox.counters()["refreshes"]
    try:
        rotated, skipped, unreadable = rotate(serving)
    finally:
        refreshes_during = sandbox.counters()["refreshes"] - refreshes_before
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)

    assert refreshes_during > 0  # tokens really were refreshed while the command ran
    assert unreadable == 0
    assert rotated + skipped == 306
    assert rotated >= 300  # the fillers; a user's record may already be on the new key
    for index, seen in enumerate(statuses):
        assert seen, index
        assert set(seen) == {200}, (index, seen)
    for key, blob in records(redis_client, key_prefix).items():
        assert readable_by(NEW, blob), key
    counters = sandbox.counters()
    assert counters["refresh_reuse"] == 0
    assert counters["refresh_failures"] == 0
    # Nobody was signed out: every user still reaches the API, through the new key alone.
    newest = make_app({**serving.config, "SPARK_TOKEN_KEYS": [NEW]})
    for flow in users:
        assert same_browser(newest, flow).get("/dashboard").status_code == 200


@pytest.mark.parametrize("command", ["rotate-keys", "retry-revocations"])
def test_commands_report_a_broken_configuration_in_one_line(command: str) -> None:
    from click.testing import CliRunner
    from flask.cli import ScriptInfo

    from flask_spark.ext.cli import spark_cli

    def broken_app() -> Flask:
        app = Flask(__name__)
        app.config["SPARK_CLIENT_ID"] = "id"  # no secret, no keys...
        SparkAuth(app)
        return app

    result = CliRunner().invoke(spark_cli, [command], obj=ScriptInfo(create_app=broken_app))
    assert result.exit_code == 1
    assert "SPARK_CLIENT_SECRET is not set" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
