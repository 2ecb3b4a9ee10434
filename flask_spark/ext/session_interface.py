"""flask-spark's server-side session: a small Redis session interface on Flask's public API.

Why its own and not Flask-Session's (see ``docs/architecture.rst``): a session loaded from Redis
is written back only while its key still exists (a sign-out elsewhere must not be undone by a
request that was running meanwhile), the Redis TTL is an *idle* timeout renewed by the read
itself, any redis-py client works (Cluster and Sentinel too), a visitor who stores nothing costs
no Redis key, and a dead Redis gives an unsaved, empty session instead of a traceback.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import zlib
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, request
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSession, SessionInterface
from werkzeug.wrappers import Response

from ..core.redis_client import REDIS_DOWN

log = logging.getLogger("flask_spark")

#: The keys flask-spark keeps in the session (its data; the app's own keys sit beside them).
SESSION_KEY = "_spark"
CSRF_KEY = "_spark_csrf"
LOGOUT_STATE_KEY = "_spark_logout_state"

_SID = re.compile(r"[A-Za-z0-9_-]{43}")

#: Session data from this many bytes on is stored zlib-compressed when that is smaller, as
#: itsdangerous does for cookies: a signed-in user's claims shrink to about half.
COMPRESS_FROM = 256


class ServerSession(SecureCookieSession):
    """A session whose data lives in Redis under :attr:`sid`; the cookie holds only the id."""

    def __init__(
        self,
        initial: Any = None,
        *,
        sid: str,
        from_store: bool = False,
        store_unavailable: bool = False,
        token_blob: bytes | None = None,
    ) -> None:
        super().__init__(initial)
        self.sid = sid
        #: the sealed token record, read in the same Redis round trip as the session; never
        #: part of the session data, taken (once) by this request's API client
        self.token_blob = token_blob
        #: loaded from Redis: a write-back must not recreate a key deleted meanwhile
        self.from_store = from_store
        #: Redis was down when the request came in: the session is empty and never saved
        self.store_unavailable = store_unavailable


class SparkSessionInterface(SessionInterface):
    """Sessions in Redis under ``<key_prefix>{<sid>}``, idle-expiring after ``idle_timeout``."""

    serializer = TaggedJSONSerializer()

    def __init__(
        self,
        client: Any,
        *,
        key_prefix: str = "session:",
        idle_timeout: int = 7200,
        prefetch: Callable[[Any, str], None] | None = None,
    ) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.idle_timeout = idle_timeout
        #: queues the read of the session's token record on the pipeline that reads the
        #: session (``TokenStore.queue_load``): one round trip for both
        self.prefetch = prefetch
        # Reads the serializer's tagged JSON, untagging as it decodes: half the time of its
        # ``loads``, which walks the decoded data again in Python (a read on every request).
        self._decoder = json.JSONDecoder(object_hook=self.serializer.untag)
        encoder = getattr(client, "get_encoder", None)
        #: the client returns bytes (a client that decodes responses gets plain JSON only)
        self.binary = not (encoder is not None and getattr(encoder(), "decode_responses", False))

    def store_key(self, sid: str) -> str:
        """The Redis key of session ``sid``; the hash tag keeps it in the slot of its tokens."""
        return f"{self.key_prefix}{{{sid}}}"

    @staticmethod
    def new_sid() -> str:
        """A fresh, unguessable session id (256 bits)."""
        return secrets.token_urlsafe(32)

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid or not _SID.fullmatch(sid):
            return ServerSession(sid=self.new_sid())
        try:
            raw, blob = self._read(sid)
        except REDIS_DOWN as exc:
            log.error("Session store unavailable: %s", type(exc).__name__)
            return ServerSession(sid=self.new_sid(), store_unavailable=True)
        data = self.decode(raw)
        if data is None:  # unknown, expired or unreadable: a new id, never the one offered
            return ServerSession(sid=self.new_sid())
        return ServerSession(data, sid=sid, from_store=True, token_blob=blob)

    def _read(self, sid: str) -> tuple[Any, Any]:
        """The session (its read renews the idle TTL) and, in the same round trip, its tokens.

        A non-transactional pipeline: the two keys share a hash slot, so a Redis Cluster sends
        both commands to one node in one write.
        """
        key = self.store_key(sid)
        if self.prefetch is None:
            return self.client.getex(key, ex=self.idle_timeout), None
        pipeline = self.client.pipeline(transaction=False)
        pipeline.getex(key, ex=self.idle_timeout)
        self.prefetch(pipeline, sid)
        raw, blob = pipeline.execute()
        return raw, blob

    def encode(self, data: dict[str, Any]) -> bytes:
        """The stored form of session data: tagged JSON, zlib-compressed when large."""
        text = self.serializer.dumps(data).encode()
        if self.binary and len(text) >= COMPRESS_FROM:
            packed = zlib.compress(text)
            if len(packed) < len(text):
                return packed
        return text

    def decode(self, raw: bytes | str | None) -> dict[str, Any] | None:
        """Session data from its stored form (None when absent or unreadable)."""
        if raw is None:
            return None
        try:
            if isinstance(raw, bytes):
                # JSON of a dict starts with "{"; anything else is the compressed form.
                raw = (raw if raw[:1] == b"{" else zlib.decompress(raw)).decode()
            data = self._decoder.decode(raw)
        except (ValueError, TypeError, UnicodeDecodeError, zlib.error):
            return None
        return data if isinstance(data, dict) else None

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if not isinstance(session, ServerSession) or session.store_unavailable:
            return
        if session.accessed:
            response.vary.add("Cookie")
        name = self.get_cookie_name(app)
        domain, path = self.get_cookie_domain(app), self.get_cookie_path(app)
        if not session:
            if session.modified:  # emptied in this request: forget it here and in the browser
                self._forget(session.sid)
                response.delete_cookie(name, domain=domain, path=path)
            return
        if not session.modified:
            return  # unchanged: the read already renewed the idle timeout
        try:
            written = self.client.set(
                self.store_key(session.sid),
                self.encode(dict(session)),
                ex=self.idle_timeout,
                xx=session.from_store,
            )
        except REDIS_DOWN as exc:
            log.error("Session store unavailable while saving: %s", type(exc).__name__)
            return
        if not written:
            return  # ended elsewhere while this request ran: stays ended
        if request.cookies.get(name) != session.sid:  # new or regenerated id
            response.set_cookie(
                name,
                session.sid,
                httponly=self.get_cookie_httponly(app),
                secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app),
                domain=domain,
                path=path,
                partitioned=self.get_cookie_partitioned(app),
            )

    def _forget(self, sid: str) -> None:
        try:
            self.client.delete(self.store_key(sid))
        except REDIS_DOWN as exc:
            log.error("Session store unavailable while deleting: %s", type(exc).__name__)

    def regenerate(self, session: Any) -> None:
        """A new session id for the same data; the old server-side session is deleted."""
        self.client.delete(self.store_key(session.sid))
        session.sid = self.new_sid()
        session.from_store = False
        session.token_blob = None
        session.modified = True
