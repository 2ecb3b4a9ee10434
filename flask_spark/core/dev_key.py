"""The Fernet keys of ``SPARK_TOKEN_KEYS``, and the development key used in debug without them."""

from __future__ import annotations

import logging
import os
from typing import Any

from cryptography.fernet import Fernet

from .errors import SparkConfigError

log = logging.getLogger("flask_spark")

#: The development key's file name in the app's instance folder (debug without keys).
DEV_KEY_FILE = "spark-dev-key"


def token_keys(
    value: Any, *, debug: bool, testing: bool, instance_path: str | None
) -> tuple[tuple[str, ...], bool, str | None]:
    """The validated keys, whether they are ephemeral, and the development key's file (without
    keys: in debug, the key kept in the instance folder, so a reloader's restart keeps everyone
    signed in; in testing, an ephemeral key)."""
    if not value:
        if not (debug or testing):
            raise SparkConfigError(
                "SPARK_TOKEN_KEYS is not set: flask-spark will not store tokens without an "
                "encryption key. Run `flask spark keygen` and set SPARK_TOKEN_KEYS to the key "
                "(shell: export SPARK_TOKEN_KEYS=<key>; Python: "
                "app.config['SPARK_TOKEN_KEYS'] = ['<key>'])."
            )
        if debug and not testing and instance_path:
            path = os.path.join(instance_path, DEV_KEY_FILE)
            log.warning(
                "SPARK_TOKEN_KEYS is not set: using the development key kept in %s (debug "
                "only). Set SPARK_TOKEN_KEYS before deploying.",
                path,
            )
            return (development_key(path),), False, path
        log.warning(
            "SPARK_TOKEN_KEYS is not set: using an ephemeral key (debug/testing only); "
            "sessions will not survive a restart. Run `flask spark keygen` to make one."
        )
        return (Fernet.generate_key().decode(),), True, None
    if isinstance(value, str | bytes):  # from an environment variable: comma-separated
        value = [part.strip() for part in _text(value).split(",") if part.strip()]
    keys = tuple(_text(key) for key in value)
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise SparkConfigError(
                f"SPARK_TOKEN_KEYS[{index}] is not a valid Fernet key (32 url-safe base64 "
                "bytes). Make one with `flask spark keygen`."
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
            f"{path} does not hold a Fernet key: delete the file and a new one is made (this "
            "signs everyone out of the development app), or set SPARK_TOKEN_KEYS."
        ) from None
    return key
