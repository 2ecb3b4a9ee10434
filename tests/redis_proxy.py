"""A TCP proxy in front of a Redis server that counts round trips (tests and benchmarks).

A round trip is counted at the protocol level: on each connection, the first bytes the client
sends after the server last answered (or after connecting) start one. A pipeline of commands
written at once is one round trip; two commands each waiting for its answer are two.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Any


class CountingProxy:
    """``redis://127.0.0.1:<port>`` forwarding to ``target``; :attr:`round_trips` so far."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}"
        self.round_trips = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def start(self) -> CountingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed by stop()
            upstream = socket.create_connection(self.target)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        waiting = False  # the client has sent a request the server has not answered yet
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while True:
                for key, _ in selector.select():
                    source: Any = key.fileobj
                    try:
                        data = source.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        for sock in (client, upstream):
                            sock.close()
                        return
                    if source is client:
                        if not waiting:
                            with self._lock:
                                self.round_trips += 1
                        waiting = True
                    else:
                        waiting = False
                    key.data.sendall(data)

    def stop(self) -> None:
        """Close the listener and every forwarded connection."""
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
