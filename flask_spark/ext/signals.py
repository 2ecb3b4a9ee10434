"""Blinker signals; receivers get the app as sender and the user's identity, never tokens."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A user signed in: ``user`` (a :class:`~flask_spark.SparkUser`).
logged_in = _signals.signal("spark-logged-in")
#: A sign-in was rejected: ``reason`` (short code) and ``message``.
login_failed = _signals.signal("spark-login-failed")
#: A session's tokens were refreshed at the provider: ``sid`` (once per real refresh).
token_refreshed = _signals.signal("spark-token-refreshed")
#: A user was signed out: ``user`` (maybe anonymous), ``reason`` (``"logout"``, ``"session_ended"``,
#: ``"frontchannel"``, ``"backchannel"``, ``"everywhere"``; the last three with ``sessions``).
logged_out = _signals.signal("spark-logged-out")
#: Tokens were revoked at the provider: ``user``, ``revoked`` (bool: did the provider confirm).
tokens_revoked = _signals.signal("spark-tokens-revoked")
