"""The embedded redis-server: it must not outlive a killed `flask run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from flask_spark.testing.redis_server import RedisServer
server = RedisServer(unix_socket=True, die_with_parent={die!r}).start()
print(server.process.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_embedded_redis_dies_with_a_killed_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(root=str(ROOT), die=True)], stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    redis_pid = int(parent.stdout.readline())
    assert _alive(redis_pid)
    parent.send_signal(signal.SIGTERM)  # what a plain `kill` does: atexit never runs
    parent.wait(120)
    deadline = time.monotonic() + 10
    while _alive(redis_pid):  # polling for the kernel's SIGTERM to take effect, with a deadline
        if time.monotonic() > deadline:
            os.kill(redis_pid, signal.SIGKILL)
            pytest.fail("the embedded redis-server outlived its parent")
        time.sleep(0.02)


def test_a_server_started_from_a_worker_thread_outlives_that_thread() -> None:
    """The kernel signal would follow the starting thread, not the process: not used there."""
    import threading

    from flask_spark.testing.redis_server import RedisServer

    started: list[RedisServer] = []
    worker = threading.Thread(
        target=lambda: started.append(RedisServer(unix_socket=True, die_with_parent=True).start())
    )
    worker.start()
    worker.join(20)
    server = started[0]
    try:
        assert server.client().ping()  # the thread is gone, the server is not
    finally:
        server.stop()
