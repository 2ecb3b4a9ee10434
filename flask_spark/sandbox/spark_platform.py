"""What the real Spark Platform publishes, so the sandbox can mirror it by default.

``PRODUCTION_DISCOVERY`` is sparkplatform.com's discovery document field for field (a verbatim
copy is kept in ``tests/data/spark-platform/`` and a test compares the two). The sandbox serves it
with only the host changed. ``GENERIC_EXTRAS`` is what the sandbox adds when it plays a generic
OpenID provider (``SandboxServer(generic=True)``): features Spark does not advertise.
"""

from __future__ import annotations

from typing import Any

PRODUCTION_ISSUER = "https://sparkplatform.com"

#: sparkplatform.com/.well-known/openid-configuration, as published.
PRODUCTION_DISCOVERY: dict[str, Any] = {
    "issuer": "https://sparkplatform.com",
    "jwks_uri": "https://sparkplatform.com/openid/jwks.json",
    "response_types_supported": [
        "id_token",
        "id_token token",
        "code",
        "id_token code token",
        "id_token code",
        "code token",
    ],
    "subject_types_supported": ["public", "pairwise"],
    "id_token_signing_alg_values_supported": ["RS256"],
    "authorization_endpoint": "https://sparkplatform.com/openid/authorize",
    "token_endpoint": "https://sparkplatform.com/openid/token",
    "userinfo_endpoint": "https://sparkplatform.com/openid/userinfo",
    "scopes_supported": ["openid", "profile", "email", "address", "phone", "RESO", "FBS"],
    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    "claims_supported": [
        "sub",
        "iss",
        "name",
        "given_name",
        "family_name",
        "middle_name",
        "MemberNameSuffix",
        "preferred_username",
        "website",
        "address",
        "phone_number",
        "phone_number_verified",
        "picture",
        "email",
        "email_verified",
        "zoneinfo",
        "MemberMlsId",
        "OfficeKey",
        "Office",
        "OfficeMlsId",
        "MemberNrdsId",
        "MemberStateLicense",
        "MemberAOR",
        "MemberAORkey",
        "MemberPrimaryAorId",
        "MemberPrimaryAorKey",
        "MemberType",
        "MemberStatus",
        "UserType",
        "UserLevel",
        "FlexmlsMemberType",
        "user_is_visible",
        "user_profile_visible",
        "user_is_enabled",
        "user_is_active",
        "mls_system_access",
        "user_is_billable",
    ],
    "claims_parameter_supported": True,
    "revocation_endpoint": "https://sparkplatform.com/openid/revoke",
}

#: Spark's own claims (beyond the standard ones) that ``claims_supported`` lists.
SPARK_CLAIMS: tuple[str, ...] = tuple(PRODUCTION_DISCOVERY["claims_supported"][16:])

#: Metadata only the generic-provider mode advertises (none of it is in Spark's document).
GENERIC_EXTRAS: dict[str, Any] = {
    "response_modes_supported": ["query"],
    "grant_types_supported": ["authorization_code", "refresh_token"],
    "revocation_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    "code_challenge_methods_supported": ["S256"],
    "authorization_response_iss_parameter_supported": True,
    "frontchannel_logout_supported": True,
    "frontchannel_logout_session_supported": True,
    "backchannel_logout_supported": True,
    "backchannel_logout_session_supported": True,
}

#: Claims only the generic-provider mode adds to ``claims_supported``.
GENERIC_CLAIMS: tuple[str, ...] = ("aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash")


def with_host(value: Any, issuer: str) -> Any:
    """``value`` with every production URL moved to ``issuer`` (strings, lists, dicts)."""
    if isinstance(value, str):
        return (
            issuer + value[len(PRODUCTION_ISSUER) :]
            if value.startswith(PRODUCTION_ISSUER)
            else value
        )
    if isinstance(value, list):
        return [with_host(item, issuer) for item in value]
    if isinstance(value, dict):
        return {key: with_host(item, issuer) for key, item in value.items()}
    return value
