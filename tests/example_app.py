"""The example app (``examples/myflexmls``) as ``tests/test_many_workers.py`` serves it under
gunicorn: unchanged, configured from ``SPARK_*`` environment variables, plus an ``X-Worker-Pid``
response header (which process answered) and a ready marker per worker.

    gunicorn --workers 4 'tests.example_app:create_app()'
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask, Response

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from myflexmls import create_app as create_example_app  # noqa: E402

from tests.gunicorn_server import mark_worker_ready  # noqa: E402


def create_app() -> Flask:
    """The example app, naming its worker in a header; marks this worker ready."""
    app = create_example_app()

    @app.after_request
    def name_the_worker(response: Response) -> Response:
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    mark_worker_ready()
    return app
