"""The ``SPARK_*`` settings, validated into a frozen :class:`SparkConfig` when the app starts
(each mistake names the key to set), and the development key used in debug without keys."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from .errors import SparkConfigError
from .http import is_loopback_host

log = logging.getLogger("flask_spark")

#: Key -> (default, one-line documentation). The docs' configuration page is generated from this.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "SPARK_CLIENT_ID": (None, "The API key's OAuth Key (the OpenID client id). Required."),
    "SPARK_CLIENT_SECRET": (None, "The API key's secret. Required."),
    "SPARK_TOKEN_KEYS": (None, "Fernet keys (`flask spark keygen`): first encrypts, all decrypt."),
    "SPARK_REDIS_URL": (None, "redis://, rediss://, unix://, redis+cluster://, redis+sentinel://"),
    "SPARK_USER_AGENT": (None, "Sent as X-SparkApi-User-Agent; required by the Spark API."),
    "SPARK_ISSUER": ("https://sparkplatform.com", "The OpenID provider; discovery finds its URLs."),
    "SPARK_API_BASE_URL": ("https://sparkapi.com/v1/", "Spark API base URL."),
    "SPARK_RESO_BASE_URL": ("https://sparkapi.com/Reso/OData/", "RESO Web API base URL."),
    "SPARK_SCOPE": ("openid", "Space-separated scopes to request (openid is always included)."),
    "SPARK_REQUIRED_CLAIMS": (["sub"], "id_token claims a sign-in must carry, else it is refused."),
    "SPARK_REDIRECT_URI": (None, "The registered redirect URI; default: the callback's URL."),
    "SPARK_URL_PREFIX": ("/spark", "Where the sign-in blueprint is mounted."),
    "SPARK_LOGIN_DEFAULT_NEXT": ("/", "Where to go after sign-in when no safe `next` was given."),
    "SPARK_LOGOUT_REDIRECT": ("/", "Where to go after sign-out."),
    "SPARK_SINGLE_LOGOUT": (False, "At sign-out, also end the provider's session."),
    "SPARK_KEY_PREFIX": ("spark:", "Prefix of every Redis key flask-spark writes but sessions'."),
    "SPARK_SESSION_LIFETIME": (43200, "Absolute seconds a sign-in lasts, however active."),
    "SPARK_HTTP_TIMEOUT": (10.0, "Seconds before a call to the provider or the API gives up."),
    "SPARK_REQUIRE_HTTPS": (None, "HTTPS for non-loopback URLs; default: unless debug/testing."),
}

#: Settings that are gone and set no field of :class:`SparkConfig` -> what replaced them.
REMOVED: dict[str, str] = {
    "SPARK_CONFIGURE_SESSION": "Flask-Session: flask-spark extends its Redis sessions",
    "SPARK_NO_STORE_PROTECTED": "a view's own Cache-Control header (no-store is its default)",
}
#: Removed ``SPARK_<NAME>`` settings now derived or Flask's, by lower-case name -> from what.
_DERIVED = {
    "discovery_url": "SPARK_ISSUER (discovery is read at the issuer's well-known path)",
    "redis": "Flask-Session's SESSION_REDIS",
    "session_key_prefix": "Flask-Session's SESSION_KEY_PREFIX",
    "session_idle_timeout": "Flask's PERMANENT_SESSION_LIFETIME",
    "lock_timeout": "3 x SPARK_HTTP_TIMEOUT, derived",
    "lock_wait": "3 x SPARK_HTTP_TIMEOUT, derived",
}

_CHOICES = {
    "token_endpoint_auth_method": ("client_secret_post", "client_secret_basic"),
    "token_request_format": ("form", "json"),
}
DEV_KEY_FILE = "spark-dev-key"
PROXY_FIX_HINT = (
    "Behind a TLS-terminating proxy, wrap the app in werkzeug's ProxyFix: "
    "`app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)`."
)


@dataclass(frozen=True)
class SparkConfig:
    """The validated configuration of one app (see :data:`DEFAULTS` for the keys)."""

    client_id: str
    client_secret: str
    token_keys: tuple[str, ...]
    redis_url: str | None
    user_agent: str
    issuer: str
    api_base_url: str
    reso_base_url: str
    scope: str
    required_claims: tuple[str, ...]
    redirect_uri: str | None
    url_prefix: str
    login_default_next: str
    logout_redirect: str
    single_logout: bool
    key_prefix: str
    session_lifetime: int
    http_timeout: float
    require_https: bool
    discovery_url: str
    redis: Any
    #: a refresh (token call, then a JWKS fetch) must end before its lock expires
    lock_timeout: float
    lock_wait: float
    ephemeral_key: bool
    dev_key_file: str | None
    # -- options: SparkAuth(app, name=value), for tests and providers other than Spark --------
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    revocation_endpoint: str | None = None
    jwks_uri: str | None = None
    logout_endpoint: str | None = None
    #: default: the redirect URI, as Spark requires ("must match the redirect_uri")
    post_logout_redirect_uri: str | None = None
    token_endpoint_auth_method: str = "client_secret_post"  # noqa: S105
    token_request_format: str = "form"  # noqa: S105
    use_pkce: bool = True
    id_token_algorithms: tuple[str, ...] = ("RS256",)
    clock_skew: int = 60
    fetch_userinfo: bool = False
    store_logout_origins: tuple[str, ...] = ()
    store_logout_verify: bool = True
    store_logout_confirm: bool = True
    revoke_at_provider_page: str | None = None
    delete_token_at_api: bool = True
    transaction_ttl: int = 600
    refresh_skew: int = 120
    retry_max: int = 3
    retry_backoff: float = 0.5
    retry_max_time: float = 30.0


#: The fields that ``SparkAuth(app, name=value)`` may set: they have a default and no key.
_OPTIONS = frozenset(
    f.name for f in dataclasses.fields(SparkConfig) if f.default is not dataclasses.MISSING
)


def check_transport(url: str, what: str, require_https: bool) -> None:
    """Refuse a non-HTTPS ``url`` for a non-loopback host when HTTPS is required."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SparkConfigError(f"{what} must be an absolute http(s) URL, got {url!r}.")
    if require_https and parts.scheme != "https" and not is_loopback_host(parts.hostname):
        hint = " " + PROXY_FIX_HINT if "redirect" in what.lower() else ""
        raise SparkConfigError(
            f"{what} must use HTTPS (or a loopback host, or SPARK_REQUIRE_HTTPS = False), got "
            f"{url!r}.{hint}"
        )


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


def replacement(key: str) -> str | None:
    """What replaced ``key`` if it is a removed setting (an option keeps its name, lower-case)."""
    name = key.removeprefix("SPARK_").lower()
    option = f"SparkAuth(app, {name}=...)" if name in _OPTIONS else None
    return (REMOVED.get(key) or _DERIVED.get(name) or option) if key.startswith("SPARK_") else None


def unknown_keys(config: Mapping[str, Any]) -> list[str]:
    """The ``SPARK_*`` keys of ``config`` that flask-spark never had (typos, the app's own)."""
    return sorted(
        k for k in config if k.startswith("SPARK_") and k not in DEFAULTS and not replacement(k)
    )


def _value(config: Mapping[str, Any], key: str) -> Any:
    """The key's value, from a string where the default is a bool, a number or a list."""
    default = DEFAULTS[key][0]
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        return value
    if isinstance(default, bool) or key == "SPARK_REQUIRE_HTTPS":
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int | float):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value  # reported with the key's name
    if isinstance(default, list):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def load_config(
    config: Mapping[str, Any],
    *,
    debug: bool,
    testing: bool,
    instance_path: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> SparkConfig:
    """Validate the ``SPARK_*`` keys of ``config`` and the ``options``, filling in defaults;
    every problem at once, one line each, in the :class:`SparkConfigError`."""
    problems = [f"{key} was removed: use {new}." for key in config if (new := replacement(key))]
    if unknown := unknown_keys(config):
        log.warning("Ignored: %s (not flask-spark settings: a typo?).", ", ".join(unknown))
    relaxed = debug or testing
    get = functools.partial(_value, config)
    for key, what in (("SPARK_CLIENT_ID", "OAuth Key"), ("SPARK_CLIENT_SECRET", "secret")):
        if not get(key):
            problems.append(f"{key} is not set. Set it to your Spark API key's {what}.")
    try:
        keys, ephemeral, dev_key_file = token_keys(
            get("SPARK_TOKEN_KEYS"), debug=debug, testing=testing, instance_path=instance_path
        )
    except SparkConfigError as exc:
        problems.append(exc.message)
        keys, ephemeral, dev_key_file = (), False, None
    redis_client = config.get("SESSION_REDIS")
    if get("SPARK_REDIS_URL") is None and redis_client is None and not relaxed:
        problems.append("SPARK_REDIS_URL is not set. Set it to your Redis server's URL.")
    user_agent = str(get("SPARK_USER_AGENT") or "")
    if not user_agent and not relaxed:
        problems.append("SPARK_USER_AGENT is not set. Name your app (X-SparkApi-User-Agent).")
    if not (user_agent.isascii() and user_agent.isprintable() and user_agent == user_agent.strip()):
        problems.append(f"SPARK_USER_AGENT must be printable ASCII, not {user_agent!r}.")
    claims = get("SPARK_REQUIRED_CLAIMS")
    if not isinstance(claims, list | tuple) or not all(isinstance(c, str) and c for c in claims):
        problems.append(f"SPARK_REQUIRED_CLAIMS must be a list of claim names, got {claims!r}.")
        claims = ["sub"]
    scopes = str(get("SPARK_SCOPE")).split()
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    prefix = str(get("SPARK_URL_PREFIX"))
    if not prefix.startswith("/"):
        problems.append(f"SPARK_URL_PREFIX must start with '/', got {prefix!r}.")
    numbers = {}
    for key in ("SPARK_HTTP_TIMEOUT", "SPARK_SESSION_LIFETIME"):
        value = get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append(f"{key} must be a number greater than zero, got {value!r}.")
            value = DEFAULTS[key][0]
        numbers[key] = value
    require_https = get("SPARK_REQUIRE_HTTPS")
    issuer = str(get("SPARK_ISSUER"))  # compared verbatim: "https://idp/" and "https://idp" differ
    http_timeout = float(numbers["SPARK_HTTP_TIMEOUT"])
    cfg = SparkConfig(
        client_id=str(get("SPARK_CLIENT_ID")),
        client_secret=str(get("SPARK_CLIENT_SECRET")),
        token_keys=keys,
        redis_url=get("SPARK_REDIS_URL"),
        user_agent=user_agent or "flask-spark-dev",
        issuer=issuer,
        api_base_url=str(get("SPARK_API_BASE_URL")).rstrip("/") + "/",
        reso_base_url=str(get("SPARK_RESO_BASE_URL")).rstrip("/") + "/",
        scope=" ".join(scopes),
        required_claims=tuple(claims),
        redirect_uri=get("SPARK_REDIRECT_URI"),
        url_prefix=prefix.rstrip("/") or "/",
        login_default_next=str(get("SPARK_LOGIN_DEFAULT_NEXT")),
        logout_redirect=str(get("SPARK_LOGOUT_REDIRECT")),
        single_logout=bool(get("SPARK_SINGLE_LOGOUT")),
        key_prefix=str(get("SPARK_KEY_PREFIX")),
        session_lifetime=int(numbers["SPARK_SESSION_LIFETIME"]),
        http_timeout=http_timeout,
        require_https=not relaxed if require_https is None else bool(require_https),
        discovery_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
        redis=redis_client,
        lock_timeout=3 * http_timeout,
        lock_wait=3 * http_timeout,
        store_logout_origins=(issuer,),
        ephemeral_key=ephemeral,
        dev_key_file=dev_key_file,
    )
    try:
        cfg = dataclasses.replace(cfg, **(options or {}))
    except TypeError as exc:
        problems.append(f"SparkAuth(app, ...): {exc}.")
    for name, allowed in _CHOICES.items():
        if getattr(cfg, name) not in allowed:
            problems.append(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}.")
    algorithms = tuple(cfg.id_token_algorithms)
    if not algorithms or [a for a in algorithms if a == "none" or a.startswith("HS")]:
        problems.append(f"id_token_algorithms must be asymmetric (e.g. RS256), got {algorithms}.")
    origins = []
    for item in cfg.store_logout_origins:
        origin = origin_of(str(item))
        if origin is None:
            problems.append(f"store_logout_origins: {item!r} is not an http(s) origin.")
        origins.append(origin or "")
    for name in (f.name for f in dataclasses.fields(cfg)):
        url, key = getattr(cfg, name), f"SPARK_{name.upper()}"
        if url and (name == "issuer" or name.endswith(("_base_url", "_uri", "_endpoint"))):
            try:
                check_transport(url, key if key in DEFAULTS else name, cfg.require_https)
            except SparkConfigError as exc:
                problems.append(exc.message)
    if problems:
        raise SparkConfigError("\n".join(problems))
    return dataclasses.replace(
        cfg, id_token_algorithms=algorithms, store_logout_origins=tuple(origins)
    )


def token_keys(
    value: Any, *, debug: bool, testing: bool, instance_path: str | None
) -> tuple[tuple[str, ...], bool, str | None]:
    """The validated keys, whether they are ephemeral, and the development key's file: without
    keys, in debug, one kept in the instance folder (a reload keeps everyone signed in)."""
    if not value:
        if not (debug or testing):
            raise SparkConfigError(
                "SPARK_TOKEN_KEYS is not set. Set it to a key from `flask spark keygen`."
            )
        path = None
        if debug and not testing and instance_path:
            path = os.path.join(instance_path, DEV_KEY_FILE)
        kept = f"the development key kept in {path}" if path else "an ephemeral key"
        log.warning("SPARK_TOKEN_KEYS is not set: using %s (set it before deploying).", kept)
        return (development_key(path) if path else Fernet.generate_key().decode(),), not path, path
    if isinstance(value, str | bytes):  # from an environment variable: comma-separated
        value = [part.strip() for part in _text(value).split(",") if part.strip()]
    keys = tuple(_text(key) for key in value)
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise SparkConfigError(
                f"SPARK_TOKEN_KEYS[{index}] is not a Fernet key: run `flask spark keygen`."
            ) from None
    return keys, False, None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def development_key(path: str) -> str:
    """The Fernet key kept at ``path``, made on first use (readable by this user only) in one
    step (a hard link of a finished file): a process starting meanwhile reads all or nothing."""
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
            f"{path} holds no Fernet key: delete the file and a new one is made."
        ) from None
    return key
