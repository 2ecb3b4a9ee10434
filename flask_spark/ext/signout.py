"""Ending sign-ins: revoke a session's tokens (API deletion, then RFC 7009 at the provider, queued
for a retry when the provider fails) and end every session of a user."""

from __future__ import annotations

import logging

from ..core.errors import ResourceNotFound, SparkError
from ..core.redis_client import REDIS_DOWN
from ..core.revocations import RevocationQueue
from ..core.tokens import TokenSet
from .state import SparkState

log = logging.getLogger("flask_spark")


def revoke_tokens(state: SparkState, tokens: TokenSet, *, revoke_access: bool) -> bool:
    """Delete the access token at the API, then revoke at the provider; True if all confirmed.

    The API deletion comes first: once the provider has revoked the refresh token (and with
    it, at Spark, its access tokens) the API would refuse the deletion call itself.
    """
    confirmed = _delete_at_api(state, tokens)
    revocations = [(tokens.access_token, "access_token")] if revoke_access else []
    if tokens.refresh_token:
        revocations.append((tokens.refresh_token, "refresh_token"))
    for token, hint in revocations:
        confirmed = _revoke_at_provider(state, token, hint) and confirmed
    return confirmed


def revoke_grant(state: SparkState, access_token: str, refresh_token: str | None) -> bool:
    """Revoke a grant at the provider only (RFC 7009), for a sign-in refused after the code
    exchange: a refused sign-in calls no API. True when the provider confirmed."""
    confirmed = True
    for token, hint in ((refresh_token, "refresh_token"), (access_token, "access_token")):
        if token:
            confirmed = _revoke_at_provider(state, token, hint) and confirmed
    return confirmed


def _delete_at_api(state: SparkState, tokens: TokenSet) -> bool:
    """``DELETE oauth2/token/<token>`` at the Spark API; False (logged) when it failed."""
    if not state.config.delete_token_at_api:
        return True
    try:
        state.api_delete_token(tokens)
    except ResourceNotFound:
        return True  # already gone
    except SparkError as exc:
        log.warning("Deleting the access token at the Spark API failed: %s", exc.message)
        return False
    return True


def _revoke_at_provider(state: SparkState, token: str, hint: str) -> bool:
    """RFC 7009 revocation of one token; a failure is logged and queued for a later retry."""
    try:
        if not state.oidc.endpoint("revocation_endpoint"):
            log.info("The provider has no revocation endpoint; the %s expires on its own.", hint)
            return True  # nothing can be done, so nothing to warn the user about
        if state.oidc.revoke(token, hint):
            return True
    except SparkError as exc:  # SparkConfigError included (no endpoint known)
        log.warning("Revocation of the %s at the provider failed: %s", hint, exc.message)
    log.warning("The %s revocation failed; queued for `flask spark retry-revocations`.", hint)
    try:
        RevocationQueue(state.redis, state.config.key_prefix, state.vault).push(token, hint)
    except REDIS_DOWN as exc:
        log.error("Could not queue the failed revocation: %s", type(exc).__name__)
    return False


def end_user_sessions(state: SparkState, sub: str, *, revoke: bool = True) -> int:
    """End every session of user ``sub`` on every device; revoke their grants when ``revoke``.

    Returns how many sessions were still alive. Each session goes first, its revocation after
    (best effort, like a sign-out).
    """
    ended = 0
    for sid in sorted(state.registry.sessions_of(sub=sub)):
        tokens = state.tokens.load(sid) if revoke else None
        if state.registry.destroy(sid, sub):
            ended += 1
        if tokens is not None:
            revoke_tokens(state, tokens, revoke_access=True)
    return ended
