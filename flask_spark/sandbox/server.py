"""Running the sandbox: a threaded werkzeug server on loopback, in a thread or in the foreground."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..core.http import is_loopback_host
from .app import create_sandbox_app
from .auth import EXTENSION_KEY
from .logout import notify_backchannel_logout
from .state import SandboxState
from .tokens import mint_logout_token


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request (tests start many servers).

    It speaks HTTP/1.1 so that clients can keep connections alive, as they can with the real
    Spark Platform (werkzeug's default is HTTP/1.0: a new connection per request).
    """

    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Skip the access log line."""


def _base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


class SandboxServer:
    """The sandbox on a real socket; the issuer is the bound ``http://host:port``.

    The socket is bound in the constructor (``port=0`` picks a free port), so ``url`` is known
    before :meth:`start`. Usable as a context manager. ``options`` go to
    :func:`~flask_spark.sandbox.create_sandbox_app`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        allow_remote: bool = False,
        quiet: bool = True,
        **options: Any,
    ) -> None:
        if not allow_remote and not is_loopback_host(host):
            raise ValueError(f"refusing to serve the sandbox on non-loopback host {host!r}")
        self._app: Flask | None = None
        self._server: BaseWSGIServer = make_server(
            host.strip("[]"),
            port,
            self._wsgi,
            threaded=True,
            request_handler=_QuietHandler if quiet else None,
        )
        self.host = host.strip("[]")
        self.port = int(self._server.server_port)
        self.url = _base_url(self.host, self.port)
        self._app = create_sandbox_app(self.url, **options)
        self._thread: threading.Thread | None = None

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        assert self._app is not None
        response: Iterable[bytes] = self._app(environ, start_response)
        return response

    # -- properties ---------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The OpenID issuer (same as :attr:`url`)."""
        return self.url

    @property
    def app(self) -> Flask:
        """The Flask app being served."""
        assert self._app is not None
        return self._app

    @property
    def state(self) -> SandboxState:
        """Direct access to the in-memory state (counters, tokens, faults, keys)."""
        state: SandboxState = self.app.extensions[EXTENSION_KEY]
        return state

    @property
    def client_id(self) -> str:
        """The default client's id."""
        return self.state.default_client.client_id

    @property
    def client_secret(self) -> str:
        """The default client's secret."""
        return self.state.default_client.client_secret

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        """Serve in a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                name=f"spark-sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` or Ctrl-C."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test helpers (direct on the state, no HTTP round trip) -------------------------------

    def counters(self) -> dict[str, int]:
        """All counters (see ``/_sandbox/counters``)."""
        return self.state.counters()

    def reset(self) -> None:
        """Clear counters, tokens, sessions, faults and config (see ``/_sandbox/reset``)."""
        self.state.reset()

    def faults(self, **faults: Any) -> dict[str, Any]:
        """Arm faults by name (see ``/_sandbox/faults``); ``None`` clears one."""
        return self.state.update_faults(faults)

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change token lifetime / default client URIs (see ``/_sandbox/config``)."""
        return self.state.configure(settings)

    def expire_tokens(self, member_id: str | None = None) -> int:
        """Expire current access tokens (all, or one member's); returns how many."""
        return self.state.expire_tokens(member_id)

    def rotate_keys(self, *, drop_old: bool = False) -> str:
        """Publish and sign with a new key; returns its kid."""
        kid = self.state.keys.rotate(drop_old=drop_old)
        self.state.count("key_rotations")
        return kid

    def logout_token(
        self, *, sub: str | None = None, sid: str | None = None, fault: str | None = None
    ) -> str:
        """Mint a logout token for the default client (see ``/_sandbox/logout-token``)."""
        state = self.state
        return mint_logout_token(
            state.keys, state.issuer, state.default_client.client_id, sub=sub, sid=sid, fault=fault
        )

    def backchannel_logout(self, sub: str) -> list[int | None]:
        """Log a member out provider-side and notify the back-channel URI; returns statuses."""
        return notify_backchannel_logout(self.state, sub)


def serve(host: str = "127.0.0.1", port: int = 5001, **options: Any) -> None:
    """Run the sandbox in the foreground, printing the issuer and client credentials.

    ``options`` are :class:`SandboxServer` / :func:`create_sandbox_app` keyword arguments
    (``allow_remote``, ``access_token_lifetime``, ``client_id``, ``client_secret``,
    ``redirect_uris``, ...).
    """
    options.setdefault("quiet", False)
    server = SandboxServer(host, port, **options)
    print(f"Spark Platform sandbox running at {server.url}")
    mode = "generic OpenID provider" if server.state.generic else "as sparkplatform.com publishes"
    print(f"  mode:                         {mode}")
    print(f"  issuer (SPARK_ISSUER):        {server.issuer}")
    print(f"  discovery:                    {server.url}/.well-known/openid-configuration")
    print(f"  client id (SPARK_CLIENT_ID):  {server.client_id}")
    print(f"  client secret:                {server.client_secret}")
    print(f"  Spark API (SPARK_API_BASE_URL):   {server.url}/v1/")
    print(f"  RESO API (SPARK_RESO_BASE_URL):   {server.url}/Reso/OData/")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
