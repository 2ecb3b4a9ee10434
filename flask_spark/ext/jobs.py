"""Background jobs: an opaque handle instead of the session id.

The handles themselves are kept by :mod:`flask_spark.core.job_handles`.

In a request, :func:`job_handle` issues a handle for the signed-in session; a worker turns it
into an API client with :func:`api_for_job`. The session id never leaves the web process.
"""

from __future__ import annotations

import time

from flask import session

from ..core.api import SparkAPI
from ..core.errors import LoginRequired, SessionExpired
from .context import current_state, login_data
from .state import SessionTokenSource, SparkState


def job_handle() -> str:
    """A new handle for the current request's signed-in session (LoginRequired otherwise)."""
    data = login_data()
    if data is None:
        raise LoginRequired("Sign in with Flexmls before starting a job on your behalf.")
    state = current_state()
    sid: str = session.sid  # type: ignore[attr-defined]
    return state.registry.jobs.issue(sid, int(float(data["expires"]) - time.time()))


class JobTokenSource:
    """The tokens of the session a job handle names, looked up on every call.

    A revoked handle, or a session that ended (idle timeout included), stops the job at its
    next call with :class:`~flask_spark.core.errors.SessionExpired`.
    """

    def __init__(self, state: SparkState, handle: str) -> None:
        self.state = state
        self.handle = handle

    def __repr__(self) -> str:  # the handle is a credential for API calls: not in reprs
        return "JobTokenSource(handle=…)"

    def _session(self) -> SessionTokenSource:
        registry = self.state.registry
        sid = registry.jobs.session_of(self.handle)
        # The idle timeout ends a session by expiring its key, not through a sign-out: the
        # token record outlives it (to the absolute lifetime), so the session itself is asked
        # (EXISTS does not renew its idle TTL).
        if sid is not None and not registry.session_redis.exists(registry.session_key(sid)):
            registry.jobs.revoke_all(sid)
            sid = None
        if sid is None:
            raise SessionExpired("This job's handle was revoked, or the user's sign-in ended.")
        return SessionTokenSource(self.state, sid, in_request=False)

    def access_token(self) -> str:
        """A valid access token of the handle's session."""
        return self._session().access_token()

    def refresh(self, rejected: str) -> str:
        """A new token after the API refused ``rejected``."""
        return self._session().refresh(rejected)


def api_for_job(state: SparkState, handle: str) -> SparkAPI:
    """A Spark API client acting, call by call, for the session of ``handle``."""
    return state.api_with(JobTokenSource(state, handle))
