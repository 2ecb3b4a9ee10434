"""Single logout: ``/openid/logout`` (RP-initiated) and front- / back-channel notifications.

The sandbox plays Spark's fixed logout URL: it checks the ``post_logout_redirect_uri`` against
the client's redirect URI, ends the provider session and goes back with ``state``. As a generic
provider only, it also tells the client through its front-channel iframe and back-channel
``logout_token`` when registered (Spark advertises neither).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.common.urls import add_params_to_uri  # type: ignore[import-untyped,unused-ignore]
from flask import Blueprint, Response, render_template, request
from joserfc import jwt
from joserfc.errors import JoseError

from .auth import current_state
from .models import ProviderSession, SandboxClient
from .oidc_views import SESSION_COOKIE
from .state import SandboxState
from .tokens import mint_logout_token

bp = Blueprint("sandbox_logout", __name__)
log = logging.getLogger(__name__)

BACKCHANNEL_TIMEOUT = 5.0


def send_backchannel_logout(
    state: SandboxState, client: SandboxClient, *, sub: str | None, sid: str | None
) -> int | None:
    """POST a signed ``logout_token`` to the client's back-channel URI; return its status.

    Failures (no answer, non-2xx) are logged and counted, never raised: the user's logout at the
    provider must not depend on the client being up.
    """
    uri = client.backchannel_logout_uri
    if not uri:
        return None
    token = mint_logout_token(state.keys, state.issuer, client.client_id, sub=sub, sid=sid)
    try:
        answer = requests.post(uri, data={"logout_token": token}, timeout=BACKCHANNEL_TIMEOUT)
    except requests.RequestException as exc:
        log.warning("back-channel logout to %s failed: %s", uri, exc)
        state.count("backchannel_failures")
        return None
    if 200 <= answer.status_code < 300:
        state.count("backchannel_logouts")
    else:
        log.warning("back-channel logout to %s answered %s", uri, answer.status_code)
        state.count("backchannel_failures")
    return answer.status_code


def notify_backchannel_logout(state: SandboxState, sub: str) -> list[int | None]:
    """Provider-initiated logout of a member: end their sessions with the default client and
    send one logout token per session (or one with ``sub`` only when there is none)."""
    client = state.default_client
    sessions = [s for s in state.active_sessions(sub) if s.client_id == client.client_id]
    if not sessions:
        return [send_backchannel_logout(state, client, sub=sub, sid=None)]
    statuses: list[int | None] = []
    for session in sessions:
        state.end_session(session.sid)
        statuses.append(send_backchannel_logout(state, client, sub=sub, sid=session.sid))
    return statuses


def _decode_hint(state: SandboxState, hint: str) -> dict[str, Any] | None:
    """The claims of an id_token this provider signed (expired ones are fine as hints)."""
    try:
        token = jwt.decode(hint, state.keys.key_set(), algorithms=["RS256"])
    except (JoseError, ValueError):
        return None
    claims = dict(token.claims)
    return claims if claims.get("iss") == state.issuer else None


def _error_page(title: str, description: str) -> Response:
    page = render_template(
        "error.html", title=title, error="invalid_request", description=description
    )
    return Response(page, status=400, mimetype="text/html")


@bp.get("/openid/logout")
def logout() -> Response:
    """Single logout with Spark's parameters: ``client_id``, ``post_logout_redirect_uri``,
    ``state`` (``id_token_hint`` is honoured by the generic provider only).

    As FBS documents it, ``client_id`` is required with a ``post_logout_redirect_uri``, which
    "must match the redirect_uri for the client_id" exactly; ``state`` comes back unchanged.
    """
    state = current_state()
    args = request.args
    client_id = args.get("client_id")
    post_logout_uri = args.get("post_logout_redirect_uri")
    hint_claims: dict[str, Any] | None = None
    if state.generic and args.get("id_token_hint"):
        hint_claims = _decode_hint(state, args["id_token_hint"])
        if hint_claims is None:
            return _refuse(state, "The id_token_hint was not issued by this provider.")
        audience = hint_claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if client_id and client_id not in audiences:
            return _refuse(state, "The id_token_hint is for another client.")
        client_id = client_id or (str(audiences[0]) if audiences else None)
    if post_logout_uri and not client_id:
        return _refuse(state, "client_id is required with post_logout_redirect_uri.")
    client = state.query_client(client_id)
    if client_id and client is None:
        return _refuse(state, "Unknown client_id.")
    registered = client is not None and bool(
        post_logout_uri
        and client.check_post_logout_redirect_uri(post_logout_uri, generic=state.generic)
    )
    if post_logout_uri and not registered:
        why = (
            "post_logout_redirect_uri is not registered for this client."
            if state.generic
            else "post_logout_redirect_uri must match the redirect_uri for the client_id."
        )
        return _refuse(state, why)

    sid = (hint_claims or {}).get("sid") or request.cookies.get(SESSION_COOKIE)
    session = state.end_session(str(sid)) if sid else None
    state.count("logouts")
    if state.generic and session is not None and client is not None:
        send_backchannel_logout(state, client, sub=session.member_id, sid=session.sid)

    target = None
    if post_logout_uri:
        params = {"state": args["state"]} if args.get("state") else {}
        target = add_params_to_uri(post_logout_uri, params) if params else post_logout_uri
    if state.generic and client is not None and client.frontchannel_logout_uri:
        response = _frontchannel_page(state, client, session, target)
    elif target:
        response = Response(status=302, headers={"Location": target})
    else:
        page = render_template("logged_out.html", target=None, iframe_uri=None)
        response = Response(page, mimetype="text/html")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def _refuse(state: SandboxState, description: str) -> Response:
    state.count("logout_refusals")
    return _error_page("Logout failed", description)


def _frontchannel_page(
    state: SandboxState,
    client: SandboxClient,
    session: ProviderSession | None,
    target: str | None,
) -> Response:
    """The "signed out" page embedding the client's front-channel logout URI in an iframe."""
    uri = str(client.frontchannel_logout_uri)
    params = {"iss": state.issuer}
    if session is not None:
        params["sid"] = session.sid
    separator = "&" if "?" in uri else "?"
    iframe_uri = f"{uri}{separator}{urlencode(params)}"
    state.count("frontchannel_logouts")
    page = render_template("logged_out.html", target=target, iframe_uri=iframe_uri)
    return Response(page, mimetype="text/html")
