"""Template globals: ``spark_user``, ``spark_logged_in``, the sign-in/out URLs and the CSRF token."""

from __future__ import annotations

from typing import Any

from flask import Flask

from .extension import csrf_token, current_user, is_logged_in, login_url, logout_url


def register_template_helpers(app: Flask) -> None:
    """Make the helpers available in every template (and ``spark/macros.html`` importable)."""

    @app.context_processor
    def spark_context() -> dict[str, Any]:
        return {"spark_user": current_user(), "spark_logged_in": is_logged_in()}

    app.add_template_global(login_url, "spark_login_url")
    app.add_template_global(logout_url, "spark_logout_url")
    app.add_template_global(csrf_token, "spark_csrf_token")
