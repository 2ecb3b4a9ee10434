"""Every ``SPARK_*`` configuration key in one place: its default, its meaning, its validation.

:func:`load_config` reads a Flask ``app.config`` into a frozen :class:`SparkConfig` at
``init_app`` time, so that a mistake is reported when the app starts, naming the key to set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from .errors import SparkConfigError
from .http import is_loopback_host

log = logging.getLogger("flask_spark")

SPARK_ISSUER = "https://sparkplatform.com"
#: The development key's file name in the app's instance folder (debug without keys).
DEV_KEY_FILE = "spark-dev-key"

#: Key -> (default, one-line documentation). The docs' configuration page is generated from this.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "SPARK_CLIENT_ID": (None, "The API key's OAuth Key (the OpenID client id). Required."),
    "SPARK_CLIENT_SECRET": (None, "The API key's secret. Required."),
    "SPARK_ISSUER": (SPARK_ISSUER, "The OpenID provider's issuer; discovery is read from it."),
    "SPARK_DISCOVERY_URL": (
        None,
        "Discovery document URL, when not at the issuer's well-known path.",
    ),
    "SPARK_AUTHORIZATION_ENDPOINT": (None, "Override the discovered authorization endpoint."),
    "SPARK_TOKEN_ENDPOINT": (None, "Override the discovered token endpoint."),
    "SPARK_USERINFO_ENDPOINT": (None, "Override the discovered userinfo endpoint."),
    "SPARK_REVOCATION_ENDPOINT": (None, "Override the discovered revocation endpoint."),
    "SPARK_JWKS_URI": (None, "Override the discovered JWKS URI."),
    "SPARK_LOGOUT_ENDPOINT": (
        None,
        "Single-logout URL; default: discovery's end_session_endpoint, "
        "else <issuer>/openid/logout.",
    ),
    "SPARK_SCOPE": (
        "openid",
        "Space-separated scopes to request (openid is always included). Spark's discovery lists "
        "openid profile email address phone RESO FBS: profile, email, address and phone release "
        "those standard claims; RESO and FBS name the APIs the token may call (RESO Web API, "
        "Spark API); what each unlocks for a given key is set by FBS: confirm it. Default openid: "
        "FBS's examples request only openid, and Spark's own claims come with it.",
    ),
    "SPARK_TOKEN_ENDPOINT_AUTH_METHOD": (
        "client_secret_post",
        "Client authentication: client_secret_post or client_secret_basic.",
    ),
    "SPARK_TOKEN_REQUEST_FORMAT": (
        "form",
        "Token request body: form (RFC 6749) or json. Default form: FBS's docs show JSON, but "
        "FBS's own PHP OpenID client sends form-encoded bodies; the sandbox accepts both.",
    ),
    "SPARK_USE_PKCE": (
        True,
        "Send PKCE (S256) with the sign-in. Default on: it protects the code, and a provider "
        "that does not support PKCE ignores the extra parameters (RFC 7636 §5); Spark's "
        "discovery does not advertise PKCE, so turn it off if Spark ever refuses it.",
    ),
    "SPARK_REQUIRED_CLAIMS": (
        ["sub"],
        "id_token (and userinfo) claims a sign-in must carry, e.g. ['sub', 'MemberMlsId']; one "
        "missing refuses the sign-in with a clear message. Default ['sub']: which claims Spark "
        "releases to a key is not published, so require only what your app cannot do without.",
    ),
    "SPARK_REDIRECT_URI": (
        None,
        "The registered redirect URI; default: the callback's external URL.",
    ),
    "SPARK_ID_TOKEN_ALGORITHMS": (["RS256"], "Allowed id_token signing algorithms."),
    "SPARK_CLOCK_SKEW": (60, "Seconds of clock skew tolerated on id_token times."),
    "SPARK_FETCH_USERINFO": (False, "Also read the userinfo endpoint at sign-in (sub must match)."),
    "SPARK_TOKEN_KEYS": (
        None,
        "Fernet keys for the token vault; the first encrypts, all decrypt. `flask spark keygen`.",
    ),
    "SPARK_REDIS_URL": (
        None,
        "redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL of the store.",
    ),
    "SPARK_REDIS": (None, "A ready redis client (Redis, RedisCluster); wins over SPARK_REDIS_URL."),
    "SPARK_KEY_PREFIX": ("spark:", "Prefix of every Redis key flask-spark writes."),
    "SPARK_SESSION_KEY_PREFIX": ("session:", "Prefix of the server-side session keys."),
    "SPARK_USER_AGENT": (None, "Sent as X-SparkApi-User-Agent; required by the Spark API."),
    "SPARK_API_BASE_URL": ("https://sparkapi.com/v1/", "Spark API base URL."),
    "SPARK_RESO_BASE_URL": ("https://sparkapi.com/Reso/OData/", "RESO Web API base URL."),
    "SPARK_URL_PREFIX": ("/spark", "Where the sign-in blueprint is mounted."),
    "SPARK_LOGIN_DEFAULT_NEXT": ("/", "Where to go after sign-in when no safe `next` was given."),
    "SPARK_LOGOUT_REDIRECT": ("/", "Where to go after sign-out."),
    "SPARK_SINGLE_LOGOUT": (
        False,
        "After sign-out, also end the provider's session (single logout).",
    ),
    "SPARK_POST_LOGOUT_REDIRECT_URI": (
        None,
        "Where single logout returns; default: the redirect URI (the callback), because Spark "
        "says it 'must match the redirect_uri for the client_id'. The callback recognises the "
        "return by its state.",
    ),
    "SPARK_STORE_LOGOUT_ORIGINS": (
        None,
        "Origins whose navigations to the Spark Store Single Logout URI (/spark/store-logout) "
        "sign the browser out, proven by the request's Origin or Referer header; default: the "
        "issuer's origin. [] when FBS confirms it sends no Referer.",
    ),
    "SPARK_STORE_LOGOUT_VERIFY": (
        True,
        "When /spark/store-logout cannot prove its caller, ask the Spark API whether the "
        "session's token still works and sign out only if Spark refused it (and its refresh).",
    ),
    "SPARK_STORE_LOGOUT_CONFIRM": (
        True,
        "When /spark/store-logout can prove nothing, show a page asking the user to confirm "
        "the sign-out; False answers that nothing was done.",
    ),
    "SPARK_REVOKE_AT_PROVIDER_PAGE": (
        None,
        "If set, POST /revoke ends the session and revokes, then sends the user to this page.",
    ),
    "SPARK_DELETE_TOKEN_AT_API": (
        True,
        "At sign-out, DELETE the access token at the Spark API (oauth2/token/<token>); "
        "turn off for APIs other than Spark's.",
    ),
    "SPARK_NO_STORE_PROTECTED": (
        True,
        "Send Cache-Control: no-store with the answers of @spark_login_required views (unless "
        "the view set its own Cache-Control), so no cache or Back button shows them signed out.",
    ),
    "SPARK_HTTP_TIMEOUT": (10.0, "Seconds before a call to the provider or the API gives up."),
    "SPARK_TRANSACTION_TTL": (600, "Seconds a sign-in may take between /login and /callback."),
    "SPARK_REFRESH_SKEW": (120, "Refresh proactively when the access token expires within this."),
    "SPARK_LOCK_TIMEOUT": (
        30.0,
        "Seconds the refresh lock is held at most; at least 3 x SPARK_HTTP_TIMEOUT.",
    ),
    "SPARK_LOCK_WAIT": (30.0, "Seconds a request waits for another's refresh to finish."),
    "SPARK_RETRY_MAX": (3, "Retries of an idempotent API call on rate limiting or 5xx."),
    "SPARK_RETRY_BACKOFF": (
        0.5,
        "Backoff in seconds: retry n waits up to this x 2^(n-1) (urllib3's backoff + jitter).",
    ),
    "SPARK_RETRY_MAX_TIME": (30.0, "Total seconds of retry waiting at the most."),
    "SPARK_SESSION_IDLE_TIMEOUT": (7200, "Seconds of inactivity after which a session ends."),
    "SPARK_SESSION_LIFETIME": (43200, "Absolute seconds a sign-in lasts, however active."),
    "SPARK_REQUIRE_HTTPS": (
        None,
        "Require HTTPS for non-loopback URLs; default: on unless the app is in debug or testing.",
    ),
    "SPARK_CONFIGURE_SESSION": (
        None,
        "Install the Redis server-side session; default: when the app has none.",
    ),
}

_BOOL_KEYS = frozenset({"SPARK_REQUIRE_HTTPS", "SPARK_CONFIGURE_SESSION"})
_LIST_KEYS = frozenset({"SPARK_ID_TOKEN_ALGORITHMS", "SPARK_REQUIRED_CLAIMS"})
_AUTH_METHODS = ("client_secret_post", "client_secret_basic")
_FORMATS = ("form", "json")


@dataclass(frozen=True)
class SparkConfig:
    """The validated configuration of one app (see :data:`DEFAULTS` for each key's meaning)."""

    client_id: str
    client_secret: str
    issuer: str
    discovery_url: str
    authorization_endpoint: str | None
    token_endpoint: str | None
    userinfo_endpoint: str | None
    revocation_endpoint: str | None
    jwks_uri: str | None
    logout_endpoint: str | None
    scope: str
    token_endpoint_auth_method: str
    token_request_format: str
    use_pkce: bool
    required_claims: tuple[str, ...]
    redirect_uri: str | None
    id_token_algorithms: tuple[str, ...]
    clock_skew: int
    fetch_userinfo: bool
    token_keys: tuple[str, ...]
    ephemeral_key: bool
    redis_url: str | None
    redis: Any
    key_prefix: str
    session_key_prefix: str
    user_agent: str
    api_base_url: str
    reso_base_url: str
    url_prefix: str
    login_default_next: str
    logout_redirect: str
    single_logout: bool
    post_logout_redirect_uri: str | None
    store_logout_origins: tuple[str, ...]
    store_logout_verify: bool
    store_logout_confirm: bool
    revoke_at_provider_page: str | None
    delete_token_at_api: bool
    no_store_protected: bool
    http_timeout: float
    transaction_ttl: int
    refresh_skew: int
    lock_timeout: float
    lock_wait: float
    retry_max: int
    retry_backoff: float
    retry_max_time: float
    session_idle_timeout: int
    session_lifetime: int
    require_https: bool
    configure_session: bool | None
    debug: bool = field(default=False)
    #: the development key's file (debug without SPARK_TOKEN_KEYS), else None
    dev_key_file: str | None = field(default=None)


def check_transport(url: str, what: str, require_https: bool) -> None:
    """Refuse a non-HTTPS ``url`` for a non-loopback host when HTTPS is required."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SparkConfigError(f"{what} must be an absolute http(s) URL, got {url!r}.")
    if require_https and parts.scheme != "https" and not is_loopback_host(parts.hostname):
        hint = (
            " Behind a TLS-terminating proxy, wrap the app in "
            "werkzeug.middleware.proxy_fix.ProxyFix so it sees the original scheme."
            if "redirect" in what.lower()
            else ""
        )
        raise SparkConfigError(
            f"{what} must use HTTPS outside debug and testing (got {url!r}; plain HTTP is only "
            f"allowed to loopback hosts, or with SPARK_REQUIRE_HTTPS = False).{hint}"
        )


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def load_config(
    config: Mapping[str, Any], *, debug: bool, testing: bool, instance_path: str | None = None
) -> SparkConfig:
    """Validate the ``SPARK_*`` keys of ``config``, filling in defaults.

    In debug (not testing) without ``SPARK_TOKEN_KEYS``, the key is kept in
    ``instance_path/spark-dev-key``, so that a reloader's restart keeps everyone signed in.
    """
    unknown = [k for k in config if k.startswith("SPARK_") and k not in DEFAULTS]
    if unknown:
        log.warning(
            "Unknown flask-spark configuration keys (typo?): %s", ", ".join(sorted(unknown))
        )

    def get(key: str) -> Any:
        value = config.get(key)
        if value is None:
            return DEFAULTS[key][0]
        default = DEFAULTS[key][0]
        if isinstance(value, str) and (isinstance(default, bool) or key in _BOOL_KEYS):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if (
            isinstance(value, str)
            and isinstance(default, int | float)
            and not isinstance(default, bool)
        ):
            try:
                return float(value) if "." in value else int(value)
            except ValueError:
                return value  # reported below with the key's name
        if (key in _LIST_KEYS or key == "SPARK_STORE_LOGOUT_ORIGINS") and isinstance(value, str):
            return [a.strip() for a in value.split(",") if a.strip()]
        return value

    relaxed = debug or testing
    for key in ("SPARK_CLIENT_ID", "SPARK_CLIENT_SECRET"):
        if not get(key):
            raise SparkConfigError(
                f"{key} is not set. Set it to your Spark API key's "
                f"{'OAuth Key' if key.endswith('ID') else 'secret'} (or run `flask spark sandbox` "
                "for local credentials)."
            )

    dev_key_file = (
        os.path.join(instance_path, DEV_KEY_FILE)
        if debug and not testing and instance_path and not get("SPARK_TOKEN_KEYS")
        else None
    )
    token_keys, ephemeral = _token_keys(get("SPARK_TOKEN_KEYS"), relaxed, dev_key_file)

    redis_url = get("SPARK_REDIS_URL")
    redis_client = get("SPARK_REDIS")
    if redis_url is None and redis_client is None and not relaxed:
        raise SparkConfigError(
            "SPARK_REDIS_URL is not set. Set it to your Redis server, e.g. "
            "redis://127.0.0.1:6379/0 (an embedded Redis is only started in debug or testing)."
        )

    user_agent = get("SPARK_USER_AGENT")
    if not user_agent:
        if not relaxed:
            raise SparkConfigError(
                "SPARK_USER_AGENT is not set. The Spark API refuses calls without an "
                "X-SparkApi-User-Agent header (code 1016): set it to your application's name."
            )
        user_agent = "flask-spark-dev"

    auth_method = get("SPARK_TOKEN_ENDPOINT_AUTH_METHOD")
    if auth_method not in _AUTH_METHODS:
        raise SparkConfigError(
            f"SPARK_TOKEN_ENDPOINT_AUTH_METHOD must be one of {', '.join(_AUTH_METHODS)}, "
            f"got {auth_method!r}."
        )
    body_format = get("SPARK_TOKEN_REQUEST_FORMAT")
    if body_format not in _FORMATS:
        raise SparkConfigError(
            f"SPARK_TOKEN_REQUEST_FORMAT must be 'form' or 'json', got {body_format!r}."
        )

    algorithms = tuple(get("SPARK_ID_TOKEN_ALGORITHMS"))
    bad_algs = [a for a in algorithms if a == "none" or a.startswith("HS")]
    if not algorithms or bad_algs:
        raise SparkConfigError(
            "SPARK_ID_TOKEN_ALGORITHMS must list asymmetric algorithms (e.g. ['RS256']); "
            f"refused: {bad_algs or 'an empty list'}."
        )

    required_claims = get("SPARK_REQUIRED_CLAIMS")
    if not isinstance(required_claims, list | tuple) or not all(
        isinstance(name, str) and name for name in required_claims
    ):
        raise SparkConfigError(
            f"SPARK_REQUIRED_CLAIMS must be a list of claim names, got {required_claims!r}."
        )

    scopes = str(get("SPARK_SCOPE")).split()
    if "openid" not in scopes:
        scopes.insert(0, "openid")

    require_https = get("SPARK_REQUIRE_HTTPS")
    if require_https is None:
        require_https = not relaxed

    issuer, discovery_url = _issuer_and_discovery(
        config.get("SPARK_ISSUER"), get("SPARK_DISCOVERY_URL")
    )
    prefix = str(get("SPARK_URL_PREFIX"))
    if not prefix.startswith("/"):
        raise SparkConfigError(f"SPARK_URL_PREFIX must start with '/', got {prefix!r}.")

    numbers: dict[str, float] = {}
    for key in (
        "SPARK_CLOCK_SKEW",
        "SPARK_HTTP_TIMEOUT",
        "SPARK_TRANSACTION_TTL",
        "SPARK_REFRESH_SKEW",
        "SPARK_LOCK_TIMEOUT",
        "SPARK_LOCK_WAIT",
        "SPARK_RETRY_MAX",
        "SPARK_RETRY_BACKOFF",
        "SPARK_RETRY_MAX_TIME",
        "SPARK_SESSION_IDLE_TIMEOUT",
        "SPARK_SESSION_LIFETIME",
    ):
        value = get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SparkConfigError(f"{key} must be a non-negative number, got {value!r}.")
        numbers[key] = value
    for key in ("SPARK_HTTP_TIMEOUT", "SPARK_SESSION_IDLE_TIMEOUT", "SPARK_SESSION_LIFETIME"):
        if numbers[key] == 0:
            raise SparkConfigError(f"{key} must be greater than zero.")
    # A refresh (token call, then a JWKS fetch) must end before its lock expires, or a second
    # worker would spend the same refresh token and the provider would revoke the grant.
    if numbers["SPARK_LOCK_TIMEOUT"] < 3 * numbers["SPARK_HTTP_TIMEOUT"]:
        raise SparkConfigError(
            f"SPARK_LOCK_TIMEOUT ({numbers['SPARK_LOCK_TIMEOUT']:g}) must be at least 3 x "
            f"SPARK_HTTP_TIMEOUT ({numbers['SPARK_HTTP_TIMEOUT']:g}): a refresh can take that "
            "long, and its lock must not expire under it."
        )

    cfg = SparkConfig(
        client_id=str(get("SPARK_CLIENT_ID")),
        client_secret=str(get("SPARK_CLIENT_SECRET")),
        issuer=issuer,
        discovery_url=discovery_url,
        authorization_endpoint=get("SPARK_AUTHORIZATION_ENDPOINT"),
        token_endpoint=get("SPARK_TOKEN_ENDPOINT"),
        userinfo_endpoint=get("SPARK_USERINFO_ENDPOINT"),
        revocation_endpoint=get("SPARK_REVOCATION_ENDPOINT"),
        jwks_uri=get("SPARK_JWKS_URI"),
        logout_endpoint=get("SPARK_LOGOUT_ENDPOINT"),
        scope=" ".join(scopes),
        token_endpoint_auth_method=auth_method,
        token_request_format=body_format,
        use_pkce=bool(get("SPARK_USE_PKCE")),
        required_claims=tuple(required_claims),
        redirect_uri=get("SPARK_REDIRECT_URI"),
        id_token_algorithms=algorithms,
        clock_skew=int(numbers["SPARK_CLOCK_SKEW"]),
        fetch_userinfo=bool(get("SPARK_FETCH_USERINFO")),
        token_keys=token_keys,
        ephemeral_key=ephemeral,
        dev_key_file=dev_key_file,
        redis_url=redis_url,
        redis=redis_client,
        key_prefix=str(get("SPARK_KEY_PREFIX")),
        session_key_prefix=str(get("SPARK_SESSION_KEY_PREFIX")),
        user_agent=str(user_agent),
        api_base_url=_with_slash(str(get("SPARK_API_BASE_URL"))),
        reso_base_url=_with_slash(str(get("SPARK_RESO_BASE_URL"))),
        url_prefix=prefix.rstrip("/") or "/",
        login_default_next=str(get("SPARK_LOGIN_DEFAULT_NEXT")),
        logout_redirect=str(get("SPARK_LOGOUT_REDIRECT")),
        single_logout=bool(get("SPARK_SINGLE_LOGOUT")),
        post_logout_redirect_uri=get("SPARK_POST_LOGOUT_REDIRECT_URI"),
        store_logout_origins=_store_logout_origins(get("SPARK_STORE_LOGOUT_ORIGINS"), issuer),
        store_logout_verify=bool(get("SPARK_STORE_LOGOUT_VERIFY")),
        store_logout_confirm=bool(get("SPARK_STORE_LOGOUT_CONFIRM")),
        revoke_at_provider_page=get("SPARK_REVOKE_AT_PROVIDER_PAGE"),
        delete_token_at_api=bool(get("SPARK_DELETE_TOKEN_AT_API")),
        no_store_protected=bool(get("SPARK_NO_STORE_PROTECTED")),
        http_timeout=float(numbers["SPARK_HTTP_TIMEOUT"]),
        transaction_ttl=int(numbers["SPARK_TRANSACTION_TTL"]),
        refresh_skew=int(numbers["SPARK_REFRESH_SKEW"]),
        lock_timeout=float(numbers["SPARK_LOCK_TIMEOUT"]),
        lock_wait=float(numbers["SPARK_LOCK_WAIT"]),
        retry_max=int(numbers["SPARK_RETRY_MAX"]),
        retry_backoff=float(numbers["SPARK_RETRY_BACKOFF"]),
        retry_max_time=float(numbers["SPARK_RETRY_MAX_TIME"]),
        session_idle_timeout=int(numbers["SPARK_SESSION_IDLE_TIMEOUT"]),
        session_lifetime=int(numbers["SPARK_SESSION_LIFETIME"]),
        require_https=bool(require_https),
        configure_session=get("SPARK_CONFIGURE_SESSION"),
        debug=debug,
    )
    for what, url in (
        ("SPARK_ISSUER", cfg.issuer),
        ("SPARK_DISCOVERY_URL", cfg.discovery_url),
        ("SPARK_API_BASE_URL", cfg.api_base_url),
        ("SPARK_RESO_BASE_URL", cfg.reso_base_url),
    ):
        check_transport(url, what, cfg.require_https)
    for f in fields(cfg):
        if f.name.endswith(("_endpoint", "_uri")) and getattr(cfg, f.name):
            check_transport(getattr(cfg, f.name), "SPARK_" + f.name.upper(), cfg.require_https)
    return cfg


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, lower-cased; None otherwise."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme}://{host.lower()}{suffix}"


def _store_logout_origins(value: Any, issuer: str) -> tuple[str, ...]:
    """SPARK_STORE_LOGOUT_ORIGINS as normalised origins (default: the issuer's)."""
    if value is None:
        value = [issuer]
    if not isinstance(value, list | tuple):
        raise SparkConfigError(
            f"SPARK_STORE_LOGOUT_ORIGINS must be a list of origins, got {value!r}."
        )
    origins = []
    for item in value:
        origin = origin_of(str(item))
        if origin is None:
            raise SparkConfigError(
                f"SPARK_STORE_LOGOUT_ORIGINS: {item!r} is not an http(s) origin such as "
                "https://sparkplatform.com."
            )
        origins.append(origin)
    return tuple(origins)


_WELL_KNOWN = "/.well-known/openid-configuration"


def _issuer_and_discovery(issuer: Any, discovery_url: Any) -> tuple[str, str]:
    """The expected issuer and the discovery URL; either may be derived from the other."""
    if issuer:
        issuer = str(issuer)  # compared verbatim: "https://idp/" and "https://idp" differ
        return issuer, str(discovery_url or issuer.rstrip("/") + _WELL_KNOWN)
    if discovery_url:
        url = str(discovery_url)
        if url.endswith(_WELL_KNOWN):
            return url[: -len(_WELL_KNOWN)], url
        raise SparkConfigError(
            "SPARK_DISCOVERY_URL is not at the issuer's /.well-known/openid-configuration path, "
            "so the expected issuer cannot be derived from it: set SPARK_ISSUER as well."
        )
    return SPARK_ISSUER, SPARK_ISSUER + _WELL_KNOWN


def _token_keys(
    value: Any, relaxed: bool, dev_key_file: str | None = None
) -> tuple[tuple[str, ...], bool]:
    """Validate SPARK_TOKEN_KEYS; without keys, the development key in debug (kept in
    ``dev_key_file``) or an ephemeral one in testing. Returns the keys and "ephemeral"."""
    if not value:
        if not relaxed:
            raise SparkConfigError(
                "SPARK_TOKEN_KEYS is not set: flask-spark will not store tokens without an "
                "encryption key. Run `flask spark keygen` and set SPARK_TOKEN_KEYS to the key "
                "(shell: export SPARK_TOKEN_KEYS=<key>; Python: "
                "app.config['SPARK_TOKEN_KEYS'] = ['<key>'])."
            )
        if dev_key_file:
            log.warning(
                "SPARK_TOKEN_KEYS is not set: using the development key kept in %s (debug "
                "only). Set SPARK_TOKEN_KEYS before deploying.",
                dev_key_file,
            )
            return (development_key(dev_key_file),), False
        log.warning(
            "SPARK_TOKEN_KEYS is not set: using an ephemeral key (debug/testing only); "
            "sessions will not survive a restart. Run `flask spark keygen` to make one."
        )
        return (Fernet.generate_key().decode(),), True
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):  # from an environment variable: comma-separated
        value = [part.strip() for part in value.split(",") if part.strip()]
    keys: list[str] = []
    for index, key in enumerate(value):
        text = key.decode() if isinstance(key, bytes) else str(key)
        try:
            Fernet(text)
        except (ValueError, TypeError):
            raise SparkConfigError(
                f"SPARK_TOKEN_KEYS[{index}] is not a valid Fernet key (32 url-safe base64 "
                "bytes). Make one with `flask spark keygen`."
            ) from None
        keys.append(text)
    return tuple(keys), False


def development_key(path: str) -> str:
    """The Fernet key kept at ``path``, made on first use (readable by this user only).

    A debug reloader starts a new process at every code save; reading the same key there keeps
    the stored tokens readable, so a save does not sign anyone out. The file is created with
    its content in one step (a hard link of a finished file), so a process starting at the same
    moment reads either no file or the whole key.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if not os.path.exists(path):
        draft = f"{path}.{os.getpid()}.tmp"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(Fernet.generate_key().decode() + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(draft)
    with open(path, encoding="ascii") as file:
        key = file.read().strip()
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise SparkConfigError(
            f"{path} does not hold a Fernet key: delete the file and a new one is made (this "
            "signs everyone out of the development app), or set SPARK_TOKEN_KEYS."
        ) from None
    return key
