"""What flask-spark's session interface relies on in Flask-Session, pinned: a Flask-Session
release that changes one of these fails here, not at a user's site."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from typing import Any

from flask import Flask
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.redis import RedisSession, RedisSessionInterface
from redis import Redis

from flask_spark.ext.session_interface import SparkSession, SparkSessionInterface, Stored


def test_the_tested_release_line() -> None:
    assert version("flask-session").startswith("0.8.")


def test_the_constructor_takes_the_settings_it_is_given() -> None:
    params = list(inspect.signature(RedisSessionInterface.__init__).parameters)
    assert params == [
        "self",
        "app",
        "client",
        "key_prefix",
        "use_signer",
        "permanent",
        "sid_length",
        "serialization_format",
    ]


def test_the_constructor_replaces_a_client_it_does_not_know() -> None:
    # Why SparkSessionInterface hands it a placeholder and keeps its own client (Cluster).
    stranger = object()
    iface = SparkSessionInterface(Flask(__name__), stranger)
    assert iface.client is stranger
    assert isinstance(RedisSessionInterface(Flask(__name__), Redis()).client, Redis)


class Recording(SparkSessionInterface):
    """Records the hooks Flask-Session's own open_session calls."""

    def __init__(self, app: Flask, stored: dict[str, Any] | None) -> None:
        super().__init__(app, Redis(), key_prefix="k:")
        self.stored = stored
        self.asked: list[str] = []

    def _retrieve_session_data(self, store_id: str) -> Any:
        self.asked.append(store_id)
        if self.stored is None:
            return None
        stored = Stored(self.stored)
        stored.token_blob = b"record"
        return stored


def test_open_session_asks_retrieve_with_the_store_id_and_builds_the_session_class() -> None:
    app = Flask(__name__)
    iface = Recording(app, {"cart": ["book"]})
    with app.test_request_context(headers={"Cookie": "session=abc"}) as ctx:
        session = iface.open_session(app, ctx.request)
    assert iface.asked == ["k:abc"]  # _get_store_id: prefix + sid, Flask-Session's format
    assert isinstance(session, SparkSession)
    assert session.sid == "abc"
    assert dict(session) == {"cart": ["book"]}
    assert session.from_store
    assert session.token_blob == b"record"


def test_open_session_gives_a_new_id_when_nothing_is_stored() -> None:
    app = Flask(__name__)
    iface = Recording(app, None)
    with app.test_request_context(headers={"Cookie": "session=abc"}) as ctx:
        session = iface.open_session(app, ctx.request)
    assert session.sid != "abc"
    assert len(session.sid) == len(iface._generate_sid(iface.sid_length))
    assert not session.from_store


def test_the_session_class_and_the_hooks_overridden_exist_with_their_shapes() -> None:
    assert issubclass(SparkSession, RedisSession)
    assert issubclass(RedisSession, ServerSideSession)
    for name in ("_retrieve_session_data", "_upsert_session", "_delete_session", "regenerate"):
        ours = inspect.signature(getattr(SparkSessionInterface, name)).parameters
        theirs = inspect.signature(getattr(ServerSideSessionInterface, name)).parameters
        assert list(ours) == list(theirs), name
    for name in ("_get_store_id", "_generate_sid", "_sign", "get_expiration_time"):
        assert callable(getattr(ServerSideSessionInterface, name)), name


def test_a_cleared_session_is_falsy_and_keeps_permanent() -> None:
    session = SparkSession({"a": 1}, sid="x", permanent=True)
    session.clear()
    assert not session
    assert session.modified
    assert session.permanent


def test_the_serializer_round_trips_session_data() -> None:
    iface = SparkSessionInterface(Flask(__name__), Redis())
    data = {"_spark": {"sub": "1", "claims": {"name": "Jane"}}, "cart": [1, 2]}
    assert iface.serializer.decode(iface.serializer.encode(data)) == data
