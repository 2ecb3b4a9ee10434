"""The OpenID provider's HTTP endpoints: discovery, JWKS, authorize, token, userinfo, revoke."""

from __future__ import annotations

import time
from typing import Any

from authlib.common.urls import add_params_to_uri  # type: ignore[import-untyped,unused-ignore]
from authlib.oauth2 import OAuth2Error  # type: ignore[import-untyped,unused-ignore]
from authlib.oauth2.rfc6749.util import (  # type: ignore[import-untyped,unused-ignore]
    scope_to_list,
)
from flask import Blueprint, Response, current_app, g, jsonify, render_template, request

from .auth import current_state
from .faults import Faults
from .members import MEMBERS, Member, get_member
from .provider import SandboxAuthorizationServer, json_body_as_form
from .spark_platform import GENERIC_CLAIMS, GENERIC_EXTRAS, PRODUCTION_DISCOVERY, with_host

bp = Blueprint("sandbox_oidc", __name__)

SERVER_KEY = "spark_sandbox_server"
#: The provider's login-session cookie (lets ``/openid/logout`` find the session to end).
SESSION_COOKIE = "spark_sandbox_sid"


def current_server() -> SandboxAuthorizationServer:
    """The Authlib authorization server of the running sandbox app."""
    server: SandboxAuthorizationServer = current_app.extensions[SERVER_KEY]
    return server


def _faults() -> Faults:
    state = current_state()
    with state.lock:
        return Faults(**state.faults.as_dict())


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    """sparkplatform.com's discovery document with only the host changed; as a generic provider,
    with the extras Spark does not advertise (PKCE, ``iss``, logout channels, ``sid``)."""
    state = current_state()
    document: dict[str, Any] = with_host(PRODUCTION_DISCOVERY, state.issuer)
    if state.generic:
        document = {
            **document,
            **GENERIC_EXTRAS,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "claims_supported": [*document["claims_supported"], *GENERIC_CLAIMS],
        }
    document["issuer"] = _faults().discovery_issuer or document["issuer"]
    return jsonify(document)


@bp.get("/openid/jwks.json")
def jwks() -> Response:
    """The public signing keys."""
    response = jsonify(current_state().keys.jwks())
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.route("/openid/authorize", methods=["GET", "POST"])
def authorize() -> Response | tuple[str, int]:
    """Login page (GET), consent page (POST with ``member``), decision (POST with ``consent``)."""
    state = current_state()
    server = current_server()
    member: Member | None = None
    if request.method == "POST":
        member = get_member(request.form.get("member", ""))
    else:
        state.count("authorize_requests")
    try:
        grant = server.get_consent_grant(end_user=member)
    except OAuth2Error as error:
        return _authorize_error(server, error)

    context = {
        "client_id": grant.client.client_id,
        "scopes": scope_to_list(grant.request.scope) or [],
        "action": request.full_path if request.query_string else request.path,
    }
    if member is None:
        status = 400 if request.method == "POST" else 200
        message = "Choose a member to sign in as." if status == 400 else None
        return render_template("login.html", members=MEMBERS, message=message, **context), status

    consent = request.form.get("consent")
    if consent is None:
        return render_template("consent.html", member=member, **context), 200
    if consent == "allow":
        state.count("logins")
        response: Response = server.create_authorization_response(grant=grant, grant_user=member)
        sid = g.get("sandbox_sid")
        if sid:
            response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax", path="/")
        return response
    if consent == "deny":
        state.count("consents_denied")
        denied: Response = server.create_authorization_response(grant=grant, grant_user=None)
        return denied
    return render_template("consent.html", member=member, **context), 400


def _authorize_error(server: SandboxAuthorizationServer, error: Any) -> Response:
    """Redirect a validated client's error back to it (with ``iss`` as a generic provider);
    otherwise show a page."""
    if error.redirect_uri:
        response: Response = server.handle_error_response(None, error)
        if response.location and current_state().generic:
            issuer = current_state().issuer
            response.location = add_params_to_uri(response.location, {"iss": issuer})
        return response
    page = render_template(
        "error.html",
        title="Invalid authorization request",
        error=error.error,
        description=error.get_error_description() or "",
    )
    return Response(page, status=400, mimetype="text/html")


@bp.post("/openid/token")
def token() -> Response:
    """Token endpoint: code + PKCE and refresh grants, form or JSON bodies."""
    state = current_state()
    state.count("token_calls")
    faults = _faults()
    params = json_body_as_form(request) or request.form
    grant_type = params.get("grant_type")
    if faults.token_delay > 0:
        time.sleep(faults.token_delay)  # injected latency, to exercise client timeouts
    if faults.token_endpoint_status is not None:
        result = jsonify(
            error="temporarily_unavailable",
            error_description="The token endpoint is unavailable (injected fault).",
        )
        result.status_code = faults.token_endpoint_status
    else:
        result = current_server().create_token_response()
    ok = result.status_code == 200
    if not ok:
        state.count("token_errors")
    if grant_type == "authorization_code" and ok:
        state.count("authorization_code_grants")
    elif grant_type == "refresh_token":
        state.count("refreshes" if ok else "refresh_failures")
    return result


@bp.route("/openid/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """The signed-in member's claims for a bearer access token."""
    current_state().count("userinfo_calls")
    response: Response = current_server().create_endpoint_response("userinfo")
    return response


@bp.post("/openid/revoke")
def revoke() -> Response:
    """RFC 7009 token revocation (client authentication required)."""
    response: Response = current_server().create_endpoint_response("revocation")
    if response.status_code == 200:
        current_state().count("revocations")
    return response
