"""``flask spark doctor``: one row per check, OK / WARN / FAIL with what to fix, exit 1 on FAIL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.cli import ScriptInfo
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_spark import SparkAuth
from flask_spark.ext.cli import spark_cli
from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import free_port

CHECKS = (
    "configuration",
    "redis",
    "token keys",
    "discovery",
    "provider features",
    "redirect uri",
    "user agent",
    "session cookie",
)


def make(config: dict[str, Any], **overrides: Any) -> Flask:
    """An app with ``SPARK_*`` overrides; other names are ``SparkAuth`` options."""
    app = Flask(__name__)
    app.config.update({**config, **{k: v for k, v in overrides.items() if k.isupper()}})
    SparkAuth(app, **{k: v for k, v in overrides.items() if not k.isupper()})
    return app


def production(config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The test config outside debug and testing (HTTPS rules on; loopback URLs still allowed)."""
    return {**config, "TESTING": False, **overrides}


def doctor(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["spark", "doctor", *args])


def flat(result: Result) -> str:
    """The output with the table's line wrapping undone."""
    return " ".join(result.output.split())


def rows(result: Result) -> dict[str, str]:
    """``{check name: status}`` from the doctor's table."""
    found: dict[str, str] = {}
    for line in result.output.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] in ("OK", "WARN", "FAIL"):
            for name in CHECKS:
                if parts[1].startswith(name + " "):
                    found[name] = parts[0]
    return found


def test_all_ok_against_the_sandbox_and_redis(config: dict[str, Any]) -> None:
    # PKCE stays on (the default): not advertised by Spark, it is noted, never a warning.
    result = doctor(make(config))
    assert result.exit_code == 0, result.output
    assert rows(result) == dict.fromkeys(CHECKS, "OK")
    assert "All 8 checks passed." in flat(result)
    assert "issuer " + config["SPARK_ISSUER"] + " matches" in flat(result)
    assert "X-SparkApi-User-Agent: flask-spark-tests" in flat(result)


def test_all_ok_in_production_mode_with_a_pinned_https_redirect_uri(
    config: dict[str, Any],
) -> None:
    app = make(
        production(
            config,
            SPARK_REDIRECT_URI="https://app.example.com/spark/callback",
        )
    )
    result = doctor(app, "--strict")
    assert result.exit_code == 0, result.output
    assert "https://app.example.com/spark/callback (from SPARK_REDIRECT_URI" in flat(result)
    assert "Secure, HttpOnly, SameSite=Lax" in flat(result)


def test_redis_unreachable_fails(config: dict[str, Any]) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    result = doctor(make(config, SPARK_REDIS_URL=closed))
    assert result.exit_code == 1
    assert rows(result)["redis"] == "FAIL"
    assert f"cannot reach {closed}" in flat(result)
    assert "fix: Start Redis, or point SPARK_REDIS_URL" in flat(result)
    assert "1 of 8 checks failed." in flat(result)
    # The other checks still ran.
    assert rows(result)["discovery"] == "OK"


def test_redis_password_is_not_printed(config: dict[str, Any]) -> None:
    url = f"redis://user:s3cret-pw@127.0.0.1:{free_port()}/0"
    result = doctor(make(config, SPARK_REDIS_URL=url))
    assert result.exit_code == 1
    assert "s3cret-pw" not in flat(result)
    assert "user:***@127.0.0.1" in flat(result)


def test_discovery_issuer_mismatch_fails(config: dict[str, Any], sandbox: SandboxServer) -> None:
    sandbox.faults(discovery_issuer="https://evil")
    result = doctor(make(config))
    assert result.exit_code == 1
    assert rows(result)["discovery"] == "FAIL"
    assert "'https://evil'" in flat(result)
    assert "must be exactly the issuer the provider" in flat(result)


def test_discovery_unreachable_fails(config: dict[str, Any]) -> None:
    result = doctor(make(config, SPARK_ISSUER=f"http://127.0.0.1:{free_port()}"))
    assert result.exit_code == 1
    assert rows(result)["discovery"] == "FAIL"
    assert "could not be reached" in flat(result)


def test_http_redirect_uri_outside_debug_fails_and_explains_proxyfix(
    config: dict[str, Any],
) -> None:
    app = make(production(config, SERVER_NAME="app.example.com", PREFERRED_URL_SCHEME="http"))
    result = doctor(app)
    assert result.exit_code == 1
    assert rows(result)["redirect uri"] == "FAIL"
    out = flat(result)
    assert (
        "http://app.example.com/spark/callback (from SERVER_NAME and PREFERRED_URL_SCHEME)" in out
    )
    assert "is not HTTPS" in out
    assert "ProxyFix(app.wsgi_app, x_proto=1, x_host=1)" in out


def test_server_name_and_https_scheme_shape_the_redirect_uri(config: dict[str, Any]) -> None:
    app = make(production(config, SERVER_NAME="app.example.com", PREFERRED_URL_SCHEME="https"))
    result = doctor(app)
    assert result.exit_code == 0, result.output
    assert rows(result)["redirect uri"] == "OK"
    assert "https://app.example.com/spark/callback" in flat(result)


def test_redirect_uri_derived_per_request_warns_outside_debug_unless_proxyfix(
    config: dict[str, Any],
) -> None:
    app = make(production(config))
    result = doctor(app)
    assert result.exit_code == 0, result.output
    assert rows(result)["redirect uri"] == "WARN"
    assert "ProxyFix" in flat(result)
    # --strict turns the warning into a failure (for CI before a deployment).
    assert doctor(app, "--strict").exit_code == 1

    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    result = doctor(app, "--strict")
    assert result.exit_code == 0, result.output
    assert "ProxyFix is installed" in flat(result)


def test_redirect_uri_on_another_path_warns(config: dict[str, Any]) -> None:
    app = make(config, SPARK_REDIRECT_URI="http://127.0.0.1:5000/oauth/done")
    result = doctor(app)
    assert rows(result)["redirect uri"] == "WARN"
    assert "/spark/callback" in flat(result)


def test_missing_user_agent_outside_debug_is_a_config_failure(config: dict[str, Any]) -> None:
    """SparkAuth(app) refuses it at init, so the app cannot load: the doctor still reports."""

    def create_app() -> Flask:
        return make(production(config, SPARK_USER_AGENT=None))

    result = CliRunner().invoke(spark_cli, ["doctor"], obj=ScriptInfo(create_app=create_app))
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert rows(result) == {"configuration": "FAIL"}
    assert "SPARK_USER_AGENT is not set" in flat(result)
    assert "1 of 1 checks failed." in flat(result)


def test_missing_user_agent_in_debug_warns(config: dict[str, Any]) -> None:
    result = doctor(make(config, SPARK_USER_AGENT=None))
    assert result.exit_code == 0
    assert rows(result)["user agent"] == "WARN"
    assert "'flask-spark-dev'" in flat(result)
    assert "1016" in flat(result)


def test_ephemeral_token_key_warns(config: dict[str, Any]) -> None:
    result = doctor(make(config, SPARK_TOKEN_KEYS=None))
    assert rows(result)["token keys"] == "WARN"
    assert "flask spark keygen" in flat(result)


def test_two_token_keys_are_reported(config: dict[str, Any]) -> None:
    from cryptography.fernet import Fernet

    keys = [Fernet.generate_key().decode(), *config["SPARK_TOKEN_KEYS"]]
    result = doctor(make(config, SPARK_TOKEN_KEYS=keys))
    assert rows(result)["token keys"] == "OK"
    assert "2 Fernet keys: the first encrypts, all decrypt" in flat(result)


def test_config_changed_after_init_and_typos(config: dict[str, Any]) -> None:
    app = make(config)
    app.config["SPARK_URL_PREFIX"] = "auth"
    app.config["SPARK_HTTP_TIMEOUT"] = "soon"
    result = doctor(app)
    assert rows(result)["configuration"] == "FAIL"
    assert "SPARK_URL_PREFIX must start with '/'" in flat(result)
    assert "SPARK_HTTP_TIMEOUT must be a number" in flat(result)  # every problem, in one run

    app = make(config, SPARK_CLIENT_SECERT="typo")
    result = doctor(app)
    assert rows(result)["configuration"] == "WARN"
    assert "SPARK_CLIENT_SECERT" in flat(result)


def test_strict_samesite_fails(config: dict[str, Any]) -> None:
    result = doctor(make(config, SESSION_COOKIE_SAMESITE="Strict"))
    assert result.exit_code == 1
    assert rows(result)["session cookie"] == "FAIL"


def test_app_without_sparkauth(config: dict[str, Any]) -> None:
    app = Flask(__name__)
    app.cli.add_command(spark_cli)
    result = doctor(app)
    assert result.exit_code == 1
    assert "flask-spark is not initialised" in flat(result)


def real_flask(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``flask <args>`` in ``folder``, with no SPARK_* or FLASK_* variables but ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "FLASK_"))}
    return subprocess.run(
        [sys.executable, "-m", "flask", *args],
        cwd=folder,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_the_real_flask_command_reports_a_broken_app(tmp_path: Path) -> None:
    """``flask --app`` with a factory that raises SparkConfigError: a table, not a traceback."""
    (tmp_path / "brokenapp.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from flask_spark import SparkAuth

            def create_app():
                app = Flask(__name__)
                app.config.update(SPARK_CLIENT_ID="id", SPARK_CLIENT_SECRET="secret")
                SparkAuth(app)
                return app
            """
        )
    )
    done = real_flask(tmp_path, "--app", "brokenapp:create_app", "spark", "doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "FAIL  configuration" in done.stdout
    assert "SPARK_TOKEN_KEYS is not set" in done.stdout


@pytest.mark.slow
def test_the_real_flask_command_finds_app_py_and_says_each_warning_once(
    tmp_path: Path, sandbox: SandboxServer, redis_server: Any
) -> None:
    """``flask spark doctor`` with neither --app nor FLASK_APP finds ``app.py`` as ``flask`` does;
    the debug-only key is reported once (its row, not also a log line), and the fix hint is a
    shell ``export`` because this app reads its SPARK_* keys from the environment."""
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import os
            from flask import Flask
            from flask_spark import SparkAuth

            app = Flask(__name__)
            app.config.update({k: v for k, v in os.environ.items() if k.startswith("SPARK_")})
            SparkAuth(app)
            """
        )
    )
    done = real_flask(
        tmp_path,
        "spark",
        "doctor",
        SPARK_CLIENT_ID=sandbox.client_id,
        SPARK_CLIENT_SECRET=sandbox.client_secret,
        SPARK_ISSUER=sandbox.issuer,
        SPARK_API_BASE_URL=sandbox.url + "/v1/",
        SPARK_RESO_BASE_URL=sandbox.url + "/Reso/OData/",
        SPARK_USER_AGENT="DoctorTest",
        SPARK_REDIS_URL=redis_server.url,
        FLASK_DEBUG="1",  # as `flask --debug run` serves it
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARN  token keys" in done.stdout
    assert output.count("SPARK_TOKEN_KEYS is not set") == 1, output
    assert (tmp_path / "instance" / "spark-dev-key").exists()
    flat_out = " ".join(done.stdout.split())
    assert "`export SPARK_TOKEN_KEYS=<key>` in the shell." in flat_out
    assert "app.config[" not in flat_out


def test_fix_hint_for_an_app_configured_in_python(config: dict[str, Any]) -> None:
    result = doctor(make(config, SPARK_TOKEN_KEYS=None))
    assert "`app.config['SPARK_TOKEN_KEYS'] = ['<key>']` in Python" in flat(result)
    assert "export SPARK_TOKEN_KEYS" not in flat(result)


# -- the provider's advertised features against the configuration ------------------------------


def provider_row(result: Result) -> str:
    """The status of the "provider features" row."""
    for line in result.output.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].startswith("provider features "):
            return parts[0]
    raise AssertionError(result.output)


def test_production_faithful_sandbox_warns_about_what_spark_does_not_advertise(
    config: dict[str, Any],
) -> None:
    app = make(
        config,
        SPARK_SINGLE_LOGOUT=True,
        SPARK_SCOPE="openid profile RESO bogus",
        SPARK_REQUIRED_CLAIMS=["sub", "MemberMlsId", "MemberNickname"],
    )
    result = doctor(app)
    assert result.exit_code == 0, result.output  # a WARN is not a failure
    assert provider_row(result) == "WARN"
    text = flat(result)
    assert "PKCE is sent but not advertised" in text
    assert "single logout is on (SPARK_SINGLE_LOGOUT) but the provider advertises no" in text
    assert "requested scopes bogus are not in scopes_supported" in text
    assert "required claims MemberNickname are not in claims_supported" in text
    assert "MemberMlsId" not in text.split("required claims")[1].split(";")[0]
    assert "only through the Spark Store Single Logout URI" in text
    assert "use SparkAuth(app, use_pkce=False)" in text


def test_production_faithful_sandbox_with_matching_settings_is_ok(config: dict[str, Any]) -> None:
    app = make(config, SPARK_SCOPE="openid profile email RESO FBS")
    result = doctor(app)
    assert provider_row(result) == "OK", result.output
    assert "the provider advertises what this configuration uses" in flat(result)
    assert "PKCE is sent but not advertised" in flat(result)  # noted, not a warning
    quiet = doctor(make(config, use_pkce=False, SPARK_SCOPE="openid profile"))
    assert provider_row(quiet) == "OK", quiet.output
    assert "PKCE" not in flat(quiet)


def test_generic_provider_advertises_pkce_and_logout(
    generic_sandbox: SandboxServer, redis_server: Any, key_prefix: str
) -> None:
    from .conftest import app_config

    config = app_config(generic_sandbox, redis_server, key_prefix)
    result = doctor(make(config, SPARK_SINGLE_LOGOUT=False))
    assert provider_row(result) == "OK", result.output
    assert "front- or back-channel logout advertised" in flat(result)


@pytest.mark.slow
def test_an_apps_own_spark_command_is_not_hidden_by_the_plugin(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    """Flask looks up plugin commands first: flask-spark's group offers an app's own ``spark``
    commands beside its own instead of hiding them (and is there for an app without any)."""
    (tmp_path / "ownapp.py").write_text(
        textwrap.dedent(
            f"""
            import click
            from flask import Flask
            from flask_spark import SparkAuth

            app = Flask(__name__)
            app.config.update({config!r})

            @app.cli.group("spark")
            def spark():
                "The app's own spark commands."

            @spark.command("hello")
            def hello():
                click.echo("the app's own spark command")

            SparkAuth(app)
            """
        )
    )
    own = real_flask(tmp_path, "--app", "ownapp", "spark", "hello")
    assert own.returncode == 0, own.stdout + own.stderr
    assert own.stdout.strip() == "the app's own spark command"
    listed = real_flask(tmp_path, "--app", "ownapp", "spark", "--help")
    assert "hello" in listed.stdout
    assert "doctor" in listed.stdout

    (tmp_path / "plainapp.py").write_text(
        f"from flask import Flask\nfrom flask_spark import SparkAuth\n"
        f"app = Flask(__name__)\napp.config.update({config!r})\nSparkAuth(app)\n"
    )
    ours = real_flask(tmp_path, "--app", "plainapp", "spark", "--help")
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert "doctor" in ours.stdout
    assert "hello" not in ours.stdout


def test_settings_pointing_at_different_platforms_fail(config: dict[str, Any]) -> None:
    """The sandbox's issuer with production's API base: every API call would be refused."""
    result = doctor(make(config, SPARK_API_BASE_URL="https://sparkapi.com/v1/"))
    assert result.exit_code == 1
    assert rows(result)["configuration"] == "FAIL"
    text = flat(result)
    assert "SPARK_API_BASE_URL https://sparkapi.com/v1/ is on Spark's production" in text
    assert f"SPARK_ISSUER {config['SPARK_ISSUER']} is on this machine" in text


def test_urls_are_never_cut_across_lines(config: dict[str, Any]) -> None:
    long = "https://app.example.com/" + "a-very-long-path-segment/" * 6 + "spark/callback"
    result = doctor(make(production(config, SPARK_REDIRECT_URI=long)))
    assert long in result.output.split(), result.output


def test_every_configuration_problem_of_an_app_that_cannot_load(config: dict[str, Any]) -> None:
    broken = {**config, "TESTING": False, "SPARK_URL_PREFIX": "auth"}
    broken.update(SPARK_TOKEN_KEYS=None, SPARK_USER_AGENT=None)

    def load() -> Flask:
        return make(broken)

    result = CliRunner().invoke(spark_cli, ["doctor"], obj=ScriptInfo(create_app=load))
    assert result.exit_code == 1
    text = flat(result)
    for named in ("SPARK_TOKEN_KEYS is not set", "SPARK_USER_AGENT is not set", "SPARK_URL_PREFIX"):
        assert named in text
    assert "3 of 3 checks failed." in text


@pytest.mark.parametrize("option", ["--debug", "--app"])
def test_flasks_own_options_after_the_command_get_the_right_spelling(
    config: dict[str, Any], option: str
) -> None:
    result = doctor(make(config), option)
    assert result.exit_code == 2
    assert f"No such option: {option}. It is Flask's: put it before the command" in result.output
    spelled = "flask --debug spark doctor" if option == "--debug" else "flask --app ... spark"
    assert spelled in " ".join(result.output.split())
