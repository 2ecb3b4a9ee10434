"""The sandbox's Flask application factory: one app serving provider, Spark API and RESO API."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from . import account_views, admin, home, logout, media, oidc_views, reso, spark_api
from .auth import EXTENSION_KEY, ODataError, SparkAPIError
from .provider import create_authorization_server
from .state import (
    DEFAULT_ACCESS_TOKEN_LIFETIME,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ClientDefaults,
    SandboxState,
)


def create_sandbox_app(
    issuer: str,
    *,
    access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    redirect_uris: list[str] | tuple[str, ...] = (),
    post_logout_redirect_uris: list[str] | tuple[str, ...] = (),
    frontchannel_logout_uri: str | None = None,
    backchannel_logout_uri: str | None = None,
    generic: bool = False,
) -> Flask:
    """Build the sandbox app for ``issuer`` (its own base URL, e.g. ``http://127.0.0.1:5001``).

    The keyword options configure the default client and the access-token lifetime; they are
    also what ``/_sandbox/reset`` restores. By default the sandbox behaves as sparkplatform.com
    publishes; ``generic=True`` makes it a generic OpenID provider with what Spark does not
    advertise: mandatory PKCE, RFC 9207 ``iss``, ``sid``, front- and back-channel logout.
    """
    state = SandboxState(
        issuer,
        access_token_lifetime=access_token_lifetime,
        client=ClientDefaults(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            frontchannel_logout_uri=frontchannel_logout_uri,
            backchannel_logout_uri=backchannel_logout_uri,
        ),
        generic=generic,
    )
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION_KEY] = state
    app.extensions[oidc_views.SERVER_KEY] = create_authorization_server(state)

    blueprints = (
        home.bp,
        oidc_views.bp,
        logout.bp,
        account_views.bp,
        admin.bp,
        spark_api.bp,
        reso.bp,
        media.bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)

    app.register_error_handler(SparkAPIError, _spark_error)
    app.register_error_handler(ODataError, _odata_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _spark_error(error: SparkAPIError) -> Response:
    return error.to_response()


def _odata_error(error: ODataError) -> Response:
    return error.to_response()


def _http_error(error: HTTPException) -> Response | HTTPException:
    """API paths answer errors in their own format; other paths keep werkzeug's pages."""
    status = error.code or 500
    if error.response is not None:
        return error
    if request.path.startswith("/v1/"):
        return SparkAPIError(status, status, error.description or error.name).to_response()
    if request.path.startswith("/Reso/"):
        return ODataError(status, status, error.description or error.name).to_response()
    if request.path.startswith("/_sandbox/"):
        response = jsonify(error=error.name, error_description=error.description)
        response.status_code = status
        return response
    return error
