"""pytest fixtures for testing apps that use flask-spark (loaded automatically: ``pytest11``).

``spark_sandbox``
    The local Spark Platform (OpenID provider, Spark API, RESO Web API) over real HTTP on a free
    loopback port, started once per test session (once per worker with pytest-xdist). Its state
    is shared by the session's tests: call ``spark_sandbox.reset()`` in a test that needs fresh
    counters, tokens or faults.

``spark_sandbox_config``
    The ``SPARK_*`` keys that point an app at ``spark_sandbox``
    (see :func:`flask_spark.testing.sandbox_config`).

Example::

    import pytest
    from myapp import create_app
    from flask_spark.testing import login_test_client

    @pytest.fixture
    def app(spark_sandbox_config):
        return create_app({"TESTING": True, **spark_sandbox_config})

    def test_dashboard(app, spark_sandbox):
        client = app.test_client()
        login_test_client(client, "jane", sandbox=spark_sandbox)
        assert client.get("/dashboard").status_code == 200

Disable the plugin with ``-p no:flask_spark``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..sandbox import SandboxServer


@pytest.fixture(scope="session")
def spark_sandbox() -> Iterator[SandboxServer]:
    """The Spark Platform sandbox on loopback for this test session (stopped at the end)."""
    from ..sandbox import SandboxServer

    with SandboxServer() as server:
        yield server


@pytest.fixture
def spark_sandbox_config(spark_sandbox: SandboxServer) -> dict[str, Any]:
    """The ``SPARK_*`` configuration of an app pointed at ``spark_sandbox`` (a fresh dict)."""
    from . import sandbox_config

    return sandbox_config(spark_sandbox)
