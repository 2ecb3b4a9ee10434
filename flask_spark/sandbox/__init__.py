"""A local Spark Platform: OpenID provider, Spark API and RESO Web API on loopback.

``SandboxServer`` runs it on a real socket (tests, the example app); ``serve`` runs it in the
foreground (``python -m flask_spark.sandbox`` / ``flask spark sandbox``).
"""

from __future__ import annotations

from .app import create_sandbox_app
from .members import MEMBERS, Member, get_member
from .models import SandboxClient
from .server import SandboxServer, serve
from .state import SandboxState

__all__ = [
    "MEMBERS",
    "Member",
    "SandboxClient",
    "SandboxServer",
    "SandboxState",
    "create_sandbox_app",
    "get_member",
    "serve",
]
