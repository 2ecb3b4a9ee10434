"""Starting a signed-in session: shared by the sign-in callback and :mod:`flask_spark.testing`.

Whatever way a user gets signed in, the same things happen, in the same order: a new session id
(the old server-side session is deleted), the encrypted token record, the user and provider-session
index, the non-secret session data, and the ``logged_in`` signal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

from flask.json.tag import TaggedJSONSerializer

from ..core.claims import storable_claims
from ..core.redis_client import REDIS_DOWN
from ..core.tokens import TokenSet, expires_at
from ..core.user import SparkUser
from . import signals
from .session_interface import SESSION_KEY
from .state import SparkState

log = logging.getLogger("flask_spark")

#: Claims that describe the token, not the user: not kept in the session.
TECHNICAL_CLAIMS = frozenset(
    {"nonce", "at_hash", "c_hash", "jti", "exp", "iat", "nbf", "azp", "aud"}
)


def start_session(
    state: SparkState,
    session: MutableMapping[str, Any],
    claims: Mapping[str, Any],
    token_response: Mapping[str, Any],
    *,
    now: float | None = None,
) -> SparkUser:
    """Sign ``session`` in as the user of ``claims`` with the tokens of ``token_response``.

    ``session`` is a server-side session of the app's session interface (the request's
    ``flask.session``, or the one a test client's ``session_transaction()`` opened); its id is
    regenerated. ``token_response`` is the token endpoint's answer: ``access_token`` and
    optionally ``refresh_token``, ``id_token``, ``expires_in``, ``scope``. The claims must hold
    ``sub``; the token-describing ones (``nonce``, ``exp``, ...) are not kept.

    All or nothing: claims the session store cannot keep raise
    :class:`~flask_spark.core.errors.LoginError` (``claims_unstorable``) before anything is
    written, and a failure while writing removes what was written.
    """
    now = time.time() if now is None else now
    lifetime = state.config.session_lifetime
    serializer = getattr(state.session_interface, "serializer", None) or TaggedJSONSerializer()
    # Checked before anything is written: claims the session cannot keep refuse the sign-in.
    kept = storable_claims(
        {k: v for k, v in claims.items() if k not in TECHNICAL_CLAIMS}, serializer.dumps
    )
    sub = str(claims["sub"])
    provider_sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None

    previous = session.get(SESSION_KEY)
    if isinstance(previous, dict):  # signing in again over a sign-in: drop the old tokens
        old_sid: str = session.sid  # type: ignore[attr-defined]
        state.registry.destroy(old_sid, previous.get("sub"), previous.get("psid"))
    state.session_interface.regenerate(session)
    session.clear()
    sid: str = session.sid  # type: ignore[attr-defined]
    tokens = TokenSet(
        access_token=token_response["access_token"],
        refresh_token=token_response.get("refresh_token"),
        subject=sub,
        expires_at=expires_at(dict(token_response), now),
        sid=sid,
        scope=token_response.get("scope"),
    )
    user = SparkUser(kept)
    try:
        state.tokens.create(tokens, ttl=lifetime)
        state.registry.register(sid, sub, provider_sid, ttl=lifetime, login_at=now)
        session[SESSION_KEY] = {
            "sub": claims["sub"],
            "claims": kept,
            "login_at": int(now),
            "expires": int(now + lifetime),
            "psid": provider_sid,
        }
        # A receiver that raises fails the sign-in: Flask saves the session even on a 500.
        signals.logged_in.send(state.app, user=user)
    except Exception:
        session.clear()
        _roll_back(state, sid, sub, provider_sid)
        raise
    log.info("Signed in %s", sub)
    return user


def _roll_back(state: SparkState, sid: str, sub: str, provider_sid: str | None) -> None:
    """Undo a half-written sign-in (best effort: the store may be what failed)."""
    try:
        state.registry.destroy(sid, sub, provider_sid)
    except REDIS_DOWN as exc:
        log.error("Could not roll back a failed sign-in: %s", type(exc).__name__)
