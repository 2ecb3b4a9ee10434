"""Test and admin endpoints under ``/_sandbox/`` (JSON, loopback callers only, by a
loopback name: ``Host`` must be ``localhost``, ``127.0.0.0/8`` or ``[::1]``).

A state-changing call must be a JSON request (``Content-Type: application/json``, an empty
body is fine): a web page can make a browser send a "simple" cross-site POST (a form, or
``fetch`` without a preflight) to a loopback address, but not a JSON one without a CORS
preflight, which the sandbox never grants.

They let tests read counters, reset the sandbox, reconfigure the default client, expire tokens,
arm faults, rotate keys and mint or send back-channel logout tokens.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, jsonify, request

from ..core.http import is_loopback_host
from .auth import current_state
from .faults import LOGOUT_TOKEN_FAULTS, FaultError
from .logout import notify_backchannel_logout
from .state import ConfigError
from .tokens import attacker_certificate_pem, mint_logout_token

bp = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")


@bp.before_request
def _loopback_only() -> None:
    """Refuse callers that are not on this machine."""
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    # A page whose own name was rebound to 127.0.0.1 (DNS rebinding) is same-origin with the
    # sandbox, preflight or not: its requests give themselves away by their Host header.
    if not loopback or not is_loopback_host(_host_name(request.host)):
        abort(403)
    if request.method not in ("GET", "HEAD", "OPTIONS") and not request.is_json:
        abort(
            _refused(
                "admin calls must be JSON requests (Content-Type: application/json), "
                "which a cross-site page cannot send without a CORS preflight"
            )
        )


def _host_name(host: str) -> str | None:
    """The name of a ``Host`` header (``[::1]:5001`` → ``::1``); None when unparsable."""
    try:
        return urlsplit("//" + host).hostname
    except ValueError:
        return None


def _json_object() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None and not request.get_data():
        return {}
    if not isinstance(data, dict):
        abort(_bad_request("expected a JSON object"))
    return data


def _bad_request(message: str) -> Response:
    response = jsonify(error="invalid_request", error_description=message)
    response.status_code = 400
    return response


def _refused(message: str) -> Response:
    response = jsonify(error="unsupported_media_type", error_description=message)
    response.status_code = 415
    return response


@bp.get("/counters")
def counters() -> Response:
    """Every counter (known names zero-filled)."""
    return jsonify(current_state().counters())


@bp.post("/reset")
def reset() -> Response:
    """Clear counters, codes, tokens, sessions, faults and config (signing keys are kept)."""
    current_state().reset()
    return jsonify(ok=True)


@bp.post("/config")
def config() -> Response:
    """Change ``access_token_lifetime`` and the default client's registered URIs."""
    try:
        return jsonify(current_state().configure(_json_object()))
    except ConfigError as exc:
        return _bad_request(str(exc))


@bp.get("/config")
def show_config() -> Response:
    """The current settings."""
    return jsonify(current_state().config())


@bp.post("/expire-tokens")
def expire_tokens() -> Response:
    """Make current access tokens (of one member, or all) expired: the next API call gets 1020."""
    member_id = _json_object().get("member_id")
    expired = current_state().expire_tokens(str(member_id) if member_id else None)
    return jsonify(expired=expired)


@bp.route("/faults", methods=["GET", "POST"])
def faults() -> Response:
    """Arm faults (POST a JSON object; ``null`` clears one) and show what is armed."""
    state = current_state()
    if request.method == "GET":
        with state.lock:
            return jsonify(state.faults.as_dict())
    try:
        return jsonify(state.update_faults(_json_object()))
    except FaultError as exc:
        return _bad_request(str(exc))


@bp.post("/rotate-keys")
def rotate_keys() -> Response:
    """Publish a new signing key and sign with it from now on (``?drop_old=1`` unpublishes)."""
    state = current_state()
    drop_old = request.args.get("drop_old", "").lower() in ("1", "true", "yes")
    kid = state.keys.rotate(drop_old=drop_old)
    state.count("key_rotations")
    return jsonify(kid=kid, kids=state.keys.kids)


@bp.post("/logout-token")
def logout_token() -> Response:
    """Mint a back-channel logout token for the default client (optionally forged)."""
    data = _json_object()
    fault = data.get("fault")
    if fault is not None and fault not in LOGOUT_TOKEN_FAULTS:
        return _bad_request(f"unknown logout token fault {fault!r}")
    state = current_state()
    token = mint_logout_token(
        state.keys,
        state.issuer,
        state.default_client.client_id,
        sub=data.get("sub"),
        sid=data.get("sid"),
        fault=fault,
    )
    return jsonify(logout_token=token)


@bp.post("/backchannel-logout")
def backchannel_logout() -> Response:
    """End a member's provider sessions and notify the client's back-channel logout URI."""
    data = _json_object()
    sub = data.get("sub")
    if not sub:
        return _bad_request("sub is required")
    state = current_state()
    if not state.default_client.backchannel_logout_uri:
        return _bad_request("the client has no backchannel_logout_uri")
    statuses = notify_backchannel_logout(state, str(sub))
    return jsonify(status=statuses[-1], statuses=statuses)


@bp.get("/attacker/jwks.json")
def attacker_jwks() -> Response:
    """The forger's public key, offered through ``jku`` by the ``jku-header`` fault."""
    key = current_state().keys.attacker_key()
    return jsonify({"keys": [dict(key.as_dict(private=False))]})


@bp.get("/attacker/cert.pem")
def attacker_cert() -> Response:
    """The forger's certificate, offered through ``x5u`` by the ``x5u-header`` fault."""
    pem = attacker_certificate_pem(current_state().keys.attacker_key())
    return Response(pem, mimetype="application/x-pem-file")
