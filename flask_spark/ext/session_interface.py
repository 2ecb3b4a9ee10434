"""The server-side session: Flask-Session's Redis sessions (its keys, serializer and settings),
with what flask-spark adds through its backend hooks (see ``docs/architecture.rst``)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_session.defaults import Defaults
from flask_session.redis import RedisSession, RedisSessionInterface
from redis import Redis
from werkzeug.wrappers import Response

from ..core.errors import SessionStoreUnavailable, SparkConfigError
from ..core.redis_client import REDIS_DOWN

log = logging.getLogger("flask_spark")

#: The keys flask-spark owns in the session (the app's own keys sit beside them).
SESSION_KEY = "_spark"
CSRF_KEY = "_spark_csrf"
LOGOUT_STATE_KEY = "_spark_logout_state"
OWN_KEYS = (SESSION_KEY, CSRF_KEY, LOGOUT_STATE_KEY)

#: Flask-Session's constructor arguments that an app's own set-up keeps, and their settings.
_SETTINGS = {
    "key_prefix": "SESSION_KEY_PREFIX",
    "use_signer": "SESSION_USE_SIGNER",
    "permanent": "SESSION_PERMANENT",
    "sid_length": "SESSION_ID_LENGTH",
}
_NOT_STORED: tuple[type[Exception], ...] = (*REDIS_DOWN, SessionStoreUnavailable)
#: What ``secrets.token_urlsafe`` makes: a cookie value of another shape costs no Redis call.
_SID = re.compile(r"[A-Za-z0-9_-]{16,128}")


class Stored(dict[str, Any]):
    """Session data as read from Redis, with the sealed token record read beside it."""

    token_blob: bytes | None = None
    down = False  # Redis could not be reached


class SparkSession(RedisSession):  # type: ignore[misc]
    """A Flask-Session session that knows whether it came from Redis (then a write-back must
    not recreate a key deleted meanwhile), with the token record read along with it."""

    def __init__(self, initial: Any = None, sid: str = "", permanent: Any = None):
        super().__init__(initial, sid, permanent)
        stored = initial if isinstance(initial, Stored) else Stored()
        self.token_blob = stored.token_blob  # never part of the data; taken once
        self.from_store = isinstance(initial, Stored) and not stored.down
        self.store_unavailable = stored.down  # empty, and never saved
        self.replaced = False  # this request ended the session it came with
        #: the app's code replaced a session that a newer sign-in (in another tab) had ended
        #: meanwhile: nothing is stored, and the browser's (newer) cookie is left alone
        self.lost = False
        self.cleared = False
        #: the id and sign-in it came with: a sign-in the app's code drops is ended on save
        self.opened = (sid, stored.get(SESSION_KEY))

    def clear(self) -> None:
        """Empty the session; a stored one gets a new id when saved (an app's log-in or log-out)."""
        super().clear()
        self.cleared = True


def drop_spark_keys(session: Any) -> None:
    """Remove flask-spark's keys from ``session``, leaving the app's own."""
    for key in OWN_KEYS:
        session.pop(key, None)


class SparkSessionInterface(RedisSessionInterface):  # type: ignore[misc]
    """Flask-Session's ``RedisSessionInterface`` with the additions listed above."""

    session_class = SparkSession

    #: queues the read of a session's token record on the pipeline that reads the session
    prefetch: Callable[[Any, str], None] | None = None

    def __init__(self, app: Flask, client: Any, **options: Any) -> None:
        # Flask-Session replaces a client that is not a ``redis.Redis`` (a RedisCluster): hand
        # it a placeholder that never connects, then keep ours.
        super().__init__(app, client if isinstance(client, Redis) else Redis(), **options)
        self.client = client
        #: ends a Flexmls sign-in the app's code dropped, given (sid, its data); True if alive
        self.on_signin_dropped: Callable[[str, dict[str, Any]], bool] | None = None

    def _retrieve_session_data(self, store_id: str) -> Stored | None:
        """The session (its read renews the idle TTL) and its token record (same cluster
        slot) in one round trip; Redis down: an empty session marked unavailable."""
        sid = store_id[len(self.key_prefix) :]
        if not _SID.fullmatch(sid):
            return None
        try:
            pipeline = self.client.pipeline(transaction=False)
            pipeline.getex(store_id, ex=self.app.permanent_session_lifetime)
            if self.prefetch is not None:
                self.prefetch(pipeline, sid)
            raw, *blob = pipeline.execute()
        except REDIS_DOWN as exc:
            log.error("Session store unavailable: %s", type(exc).__name__)
            stored = Stored()
            stored.down = True
            return stored
        if raw is None:
            return None
        try:
            stored = Stored(self.serializer.decode(raw))
        except Exception:  # unreadable: Flask-Session's decoders raise what their formats raise
            return None
        stored.token_blob = blob[0] if blob else None
        return stored

    def _upsert_session(self, session_lifetime: timedelta, session: Any, store_id: str) -> bool:
        """Write the session; one loaded from Redis only while its key still exists."""
        data = self.serializer.encode(session)
        return bool(self.client.set(store_id, data, ex=session_lifetime, xx=session.from_store))

    def _delete_session(self, store_id: str) -> bool:
        """Delete a session; True when it still existed."""
        return bool(self.client.delete(store_id))

    def regenerate(self, session: Any) -> bool:
        """A new id for the session's data, the old key deleted; its Flexmls sign-in ends.
        False when a stored session's key was gone already (ended elsewhere meanwhile)."""
        drop_spark_keys(session)
        existed = False
        if session.from_store:
            existed = self._delete_session(self._get_store_id(session.sid))
            session.replaced = True  # the browser's cookie is this request's to change
        session.sid = self._generate_sid(self.sid_length)
        session.from_store = False
        session.token_blob = None
        session.modified = True
        return existed

    def get_expiration_time(self, app: Flask, session: Any) -> datetime | None:
        """A signed-in session's cookie lasts as long as its sign-in (reads renew the idle
        timeout in Redis, not the cookie); any other, as Flask-Session says."""
        signin = session.get(SESSION_KEY)
        if signin and session.permanent:
            return datetime.fromtimestamp(float(signin["expires"]), UTC)
        return super().get_expiration_time(app, session)  # type: ignore[no-any-return]

    def store_key(self, sid: str) -> str:
        """The Redis key of session ``sid`` (Flask-Session's own format)."""
        return f"{self.key_prefix}{sid}"

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        """Store a changed session; touch the browser's cookie only for what this request
        stored or ended itself, and answer a change that could not be stored as an error."""
        if session.accessed:
            response.vary.add("Cookie")
        if not session.modified:
            return
        name = self.get_cookie_name(app)
        domain, path = self.get_cookie_domain(app), self.get_cookie_path(app)
        try:
            if session.store_unavailable:
                raise SessionStoreUnavailable("The session store was down when the request came.")
            sid, signin = session.opened
            dropped = SESSION_KEY not in session and self.on_signin_dropped
            if signin and dropped and dropped(sid, signin):  # the app dropped it: ended here
                session.replaced = True
            if session.cleared and session.from_store and session:
                session.lost = not self.regenerate(session)
            if session.lost:
                return  # a newer session may own the browser's cookie now
            store_id = self._get_store_id(session.sid)
            if not session:
                if self._delete_session(store_id) or session.replaced:  # ended here
                    response.delete_cookie(name, domain=domain, path=path)
                return
            if not self._upsert_session(app.permanent_session_lifetime, session, store_id):
                return  # ended elsewhere while this request ran: it stays ended
        except _NOT_STORED as exc:
            log.error("A changed session could not be stored: %s", type(exc).__name__)
            # The response is made already: it becomes the answer to the error, in place.
            down = SessionStoreUnavailable("We cannot store your session right now; try again.")
            answer = app.make_response(app.handle_user_exception(down))
            response.status_code, response.headers = answer.status_code, answer.headers
            response.set_data(answer.get_data())
            return
        response.set_cookie(
            name,
            self._sign(app, session.sid) if self.use_signer else session.sid,
            expires=self.get_expiration_time(app, session),
            httponly=self.get_cookie_httponly(app),
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
            domain=domain,
            path=path,
            partitioned=self.get_cookie_partitioned(app),
        )


def session_interface_for(app: Flask, client: Any) -> SparkSessionInterface:
    """The app's own Flask-Session Redis set-up extended (its client, prefix, serializer...), else
    Flask-Session's Redis sessions from the app's ``SESSION_*`` settings on ``client``."""
    current: Any = app.session_interface
    if isinstance(current, RedisSessionInterface):
        adopted = SparkSessionInterface(
            app, current.client, **{name: getattr(current, name) for name in _SETTINGS}
        )
        adopted.serializer = current.serializer
        return adopted
    if not isinstance(current, SecureCookieSessionInterface):
        raise SparkConfigError(
            f"The app's session interface ({type(current).__name__}) is not Flask-Session's "
            "Redis one: flask-spark keeps its sessions in Redis. Use SESSION_TYPE = 'redis' "
            "with Session(app), or let SparkAuth(app) set it up."
        )
    settings = {**_SETTINGS, "serialization_format": "SESSION_SERIALIZATION_FORMAT"}
    return SparkSessionInterface(
        app,
        app.config.get("SESSION_REDIS") or client,
        **{name: app.config.get(key, getattr(Defaults, key)) for name, key in settings.items()},
    )
