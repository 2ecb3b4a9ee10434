"""Helpers for testing your own app: sign a test client in without the browser, and run the
local Spark Platform sandbox for your tests.

Signing in a test client writes exactly what a real sign-in writes (a fresh server-side session
through the app's session interface, the encrypted token record, the user index), so
``@spark_login_required`` views, ``spark_user`` and sign-out behave as in production::

    from flask_spark.testing import login_test_client

    def test_dashboard(app, spark_sandbox):
        client = app.test_client()
        login_test_client(client, "jane", sandbox=spark_sandbox)  # real sandbox tokens
        assert b"Jane Appleseed" in client.get("/dashboard").data

With the ``pytest11`` plugin (:mod:`flask_spark.testing.pytest_plugin`, loaded automatically once
flask-spark is installed) you get the ``spark_sandbox`` fixture (the sandbox over real HTTP on
loopback, once per test session) and ``spark_sandbox_config`` (the ``SPARK_*`` keys that point an
app at it). Without a sandbox, :func:`login_test_client` stores the token strings you give (or
made-up ones): enough for views that do not call the API, or when you mock it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask.testing import FlaskClient

from ..core.errors import SparkConfigError
from ..core.user import SparkUser
from ..ext.signin import start_session
from ..sandbox import MEMBERS, Member

if TYPE_CHECKING:
    from ..sandbox import SandboxServer

__all__ = ["login_test_client", "sandbox_config", "sandbox_member", "sandbox_tokens"]


def sandbox_member(member: Member | str | None = None) -> Member:
    """A sandbox demo member: by :class:`~flask_spark.sandbox.Member`, Spark Id or username.

    ``None`` gives the first one (Jane Appleseed). The members are listed in
    ``flask_spark.sandbox.MEMBERS``.
    """
    if member is None:
        return MEMBERS[0]
    if isinstance(member, Member):
        return member
    for candidate in MEMBERS:
        if member in (candidate.id, candidate.username):
            return candidate
    known = ", ".join(m.username for m in MEMBERS)
    raise ValueError(f"No sandbox member {member!r}; use a Spark Id or one of: {known}.")


def sandbox_config(sandbox: SandboxServer, **overrides: Any) -> dict[str, Any]:
    """The ``SPARK_*`` configuration of an app signing in at ``sandbox`` and calling its APIs.

    Add your own keys (``SPARK_REDIS_URL``, ``SPARK_TOKEN_KEYS``...) as ``overrides`` or with
    ``app.config.update``. In ``TESTING`` mode, keys you leave out get test defaults (an
    embedded redis-server, an ephemeral encryption key).
    """
    config: dict[str, Any] = {
        "SPARK_CLIENT_ID": sandbox.client_id,
        "SPARK_CLIENT_SECRET": sandbox.client_secret,
        "SPARK_ISSUER": sandbox.issuer,
        "SPARK_API_BASE_URL": sandbox.url + "/v1/",
        "SPARK_RESO_BASE_URL": sandbox.url + "/Reso/OData/",
        "SPARK_USER_AGENT": "flask-spark-tests",
    }
    config.update(overrides)
    return config


def sandbox_tokens(
    sandbox: SandboxServer,
    member: Member | str | None = None,
    *,
    expires_in: int | None = None,
    scope: str = "openid",
) -> dict[str, Any]:
    """Issue real tokens for ``member`` at ``sandbox``, as if they had signed in there.

    Returns a token response (``access_token``, ``refresh_token``, ``id_token``, ``expires_in``,
    ``scope``) and the provider session's ``sid``; the sandbox's API accepts the access token,
    and its token endpoint refreshes and revokes the refresh token, for the default client.
    """
    from ..sandbox.models import AccessToken, RefreshToken
    from ..sandbox.tokens import IdTokenRequest, mint_id_token

    person = sandbox_member(member)
    state = sandbox.state
    client = state.default_client
    login = state.start_session(person.id, client.client_id)
    lifetime = int(expires_in if expires_in is not None else state.access_token_lifetime)
    now = time.time()
    access = secrets.token_urlsafe(32)
    refresh = secrets.token_urlsafe(32)
    state.save_tokens(
        AccessToken(
            token=access,
            client_id=client.client_id,
            member_id=person.id,
            scope=scope,
            sid=login.sid,
            issued_at=now,
            expires_at=now + lifetime,
            refresh_token=refresh,
            client=client,
        ),
        RefreshToken(
            token=refresh,
            client_id=client.client_id,
            member_id=person.id,
            scope=scope,
            sid=login.sid,
            issued_at=now,
            auth_time=login.auth_time,
            client=client,
        ),
    )
    request = IdTokenRequest(
        client_id=client.client_id,
        member=person,
        sid=login.sid,
        auth_time=login.auth_time,
        nonce=None,
        access_token=access,
        refresh=False,
    )
    return {
        "access_token": access,
        "refresh_token": refresh,
        "id_token": mint_id_token(state.keys, state.issuer, request),
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": scope,
        "sid": login.sid,
    }


def login_test_client(
    client: FlaskClient,
    member: Member | str | None = None,
    *,
    claims: Mapping[str, Any] | None = None,
    sandbox: SandboxServer | None = None,
    access_token: str | None = None,
    refresh_token: str | None = None,
    id_token: str | None = None,
    expires_in: int = 3600,
    scope: str = "openid",
) -> SparkUser:
    """Sign the Flask test ``client`` in, without the browser flow; returns the signed-in user.

    Who: ``member`` (a sandbox :class:`~flask_spark.sandbox.Member`, its Spark Id or its
    username; the first demo member by default) and/or ``claims`` (id_token claims; they win
    over the member's, and need a ``sub`` when no member is given). With ``claims`` alone, the
    user needs not be a sandbox member.

    Tokens: with ``sandbox``, real tokens are issued there (:func:`sandbox_tokens`), so
    ``spark_api`` calls, refreshes and sign-out work end to end; otherwise the given
    ``access_token`` / ``refresh_token`` / ``id_token`` are stored (made-up ones when omitted),
    expiring in ``expires_in`` seconds.

    The session is written through the app's session interface, with the encrypted token
    record and the user index, by the same code as the real sign-in callback; the ``logged_in``
    signal is sent. Signing in again replaces the previous session.
    """
    app = client.application
    state = app.extensions.get("spark.state")
    if state is None:
        raise SparkConfigError(
            "flask-spark is not initialised on this app: call SparkAuth(app) before signing in."
        )
    if claims is not None and member is None and sandbox is None:
        user_claims = dict(claims)
    else:
        person = sandbox_member(member)
        user_claims = {**person.claims(), **(claims or {})}
    if not user_claims.get("sub"):
        raise ValueError("claims need a 'sub' (the user's stable id) when no member is given.")

    response: dict[str, Any]
    if sandbox is not None and access_token is None:
        response = sandbox_tokens(sandbox, str(user_claims["sub"]), expires_in=expires_in)
        user_claims.setdefault("sid", response.pop("sid"))
        user_claims.setdefault("iss", sandbox.issuer)
    else:
        response = {
            "access_token": access_token or "test-access-" + secrets.token_urlsafe(16),
            "refresh_token": refresh_token or "test-refresh-" + secrets.token_urlsafe(16),
            "id_token": id_token,
            "expires_in": expires_in,
            "scope": scope,
        }
    with client.session_transaction() as session, app.app_context():
        return start_session(state, session, user_claims, response)
