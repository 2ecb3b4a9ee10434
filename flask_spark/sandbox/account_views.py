"""The Spark API services the provider itself owns: ``my/account`` and token deletion."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from .auth import SparkAPIError, TokenInfo, current_state, spark_endpoint
from .members import get_member

bp = Blueprint("sandbox_account", __name__, url_prefix="/v1")


@bp.get("/my/account")
@spark_endpoint
def my_account() -> Response:
    """The signed-in member's account record, in the D envelope."""
    info: TokenInfo = g.spark_token
    member = get_member(info.member_id)
    if member is None:  # pragma: no cover - tokens are only issued to demo members
        raise SparkAPIError(404, 1500, "Account not found")
    return jsonify({"D": {"Success": True, "Results": [member.account()]}})


@bp.delete("/oauth2/token/<path:token>")
@spark_endpoint
def delete_token(token: str) -> Response:
    """Delete (revoke) an access token of the calling client, as Spark's logout step does."""
    state = current_state()
    info: TokenInfo = g.spark_token
    with state.lock:
        record = state.access_tokens.get(token)
        if record is not None and record.client_id == info.client_id:
            record.revoked = True
    state.count("token_deletions")
    return jsonify({"D": {"Success": True, "Results": []}})
