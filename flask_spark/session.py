"""The server-side session: Flask-Session's Redis interface, made fit for flask-spark.

What it adds to Flask-Session: any redis-py client (Cluster and Sentinel included), the Redis
TTL as the *idle* timeout, and a dead Redis answered with a clear 503 instead of a traceback.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
import redis.sentinel
from flask import Flask, Request
from flask_session.redis import RedisSession, RedisSessionInterface

log = logging.getLogger("flask_spark")

#: The exceptions that mean "Redis is unreachable right now".
REDIS_DOWN: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.sentinel.MasterNotFoundError,
)


class UnavailableSession(RedisSession):  # type: ignore[misc]
    """The session of a request that arrived while Redis was down; it is never saved."""

    store_unavailable = True


class SparkSessionInterface(RedisSessionInterface):  # type: ignore[misc]
    """Flask-Session's Redis sessions with an idle timeout and graceful Redis outages."""

    def __init__(
        self,
        app: Flask,
        client: Any,
        *,
        key_prefix: str,
        idle_timeout: int,
        short_lived: tuple[frozenset[str], int] | None = None,
        use_signer: bool = False,
    ) -> None:
        # Flask-Session only accepts redis.Redis; Cluster/Sentinel clients are set after.
        placeholder = client if isinstance(client, redis.Redis) else redis.Redis()
        super().__init__(
            app,
            client=placeholder,
            key_prefix=key_prefix,
            use_signer=use_signer,
            permanent=False,
            sid_length=32,
            serialization_format="msgpack",
        )
        self.client = client
        self.idle_timeout = idle_timeout
        #: (keys, ttl): a session holding nothing but these keys lives only ``ttl`` seconds
        #: (a sign-in that was started and not finished must not hold Redis memory for long).
        self.short_lived = short_lived

    def open_session(self, app: Flask, request: Request) -> RedisSession:
        try:
            session = super().open_session(app, request)
        except REDIS_DOWN as exc:
            log.error("Session store unavailable: %s", type(exc).__name__)
            return UnavailableSession(sid=self._generate_sid(self.sid_length), permanent=False)
        # Loaded from Redis (the cookie's sid existed): later writes must not recreate it.
        session.from_store = request.cookies.get(self.get_cookie_name(app)) == session.sid
        return session

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if getattr(session, "store_unavailable", False):
            return
        try:
            super().save_session(app, session, response)
        except REDIS_DOWN as exc:
            log.error("Session store unavailable while saving: %s", type(exc).__name__)

    def _upsert_session(self, session_lifetime: timedelta, session: Any, store_id: str) -> None:
        """Write the session; its TTL is the idle timeout, so every saving request extends it.

        A session that was loaded from Redis is written back only if its key still exists
        (``SET ... XX``): a logout elsewhere (back-channel, another tab) that deleted it while
        this request ran must not be undone by this request's write-back.
        """
        ttl = self.idle_timeout
        if self.short_lived is not None and set(session.keys()) <= self.short_lived[0]:
            ttl = min(ttl, self.short_lived[1])
        self.client.set(
            name=store_id,
            value=self.serializer.encode(session),
            ex=ttl,
            xx=bool(getattr(session, "from_store", False)),
        )

    def regenerate(self, session: Any) -> None:
        """A new session id for the same data; the old server-side session is deleted."""
        self._delete_session(self._get_store_id(session.sid))
        session.sid = self._generate_sid(self.sid_length)
        session.from_store = False
        session.modified = True
