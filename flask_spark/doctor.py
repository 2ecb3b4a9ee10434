"""The checks behind ``flask spark doctor``: each says OK or what to fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, url_for

from .config import check_transport, load_config
from .errors import SparkError


@dataclass(frozen=True)
class CheckResult:
    """One line of the doctor's table."""

    name: str
    ok: bool
    detail: str


def _run(name: str, check: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, True, check())
    except SparkError as exc:
        return CheckResult(name, False, exc.message)
    except Exception as exc:
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}")


def run_checks(app: Flask) -> list[CheckResult]:
    """Run every check against ``app`` (inside its app context)."""
    results = [
        _run(
            "configuration",
            lambda: (
                load_config(app.config, debug=app.debug, testing=app.testing),
                "all SPARK_* keys valid",
            )[1],
        )
    ]
    if not results[0].ok:
        return results
    from .extension import current_state

    state = current_state()
    cfg = state.config

    def redis_check() -> str:
        state.redis.ping()
        return "reachable"

    def keys_check() -> str:
        if cfg.ephemeral_key:
            raise SparkError("SPARK_TOKEN_KEYS is not set: run `flask spark keygen` and set it.")
        blob = state.vault.seal_probe()
        return f"{len(cfg.token_keys)} key(s); first key encrypts ({len(blob)} bytes probe)"

    def discovery_check() -> str:
        meta = state.oidc.metadata()
        return f"issuer {meta['issuer']} matches; token endpoint {meta['token_endpoint']}"

    def redirect_check() -> str:
        with app.test_request_context(base_url=app.config.get("SERVER_NAME") and None):
            uri = cfg.redirect_uri or url_for("spark.callback", _external=True)
        check_transport(uri, "The redirect URI", cfg.require_https)
        return f"{uri} (register exactly this with your key)"

    def agent_check() -> str:
        if cfg.user_agent == "flask-spark-dev":
            raise SparkError("SPARK_USER_AGENT is not set: the Spark API answers 1016 without it.")
        return f"X-SparkApi-User-Agent: {cfg.user_agent}"

    for name, check in (
        ("redis", redis_check),
        ("token keys", keys_check),
        ("discovery", discovery_check),
        ("redirect uri", redirect_check),
        ("user agent", agent_check),
    ):
        results.append(_run(name, check))
    return results
