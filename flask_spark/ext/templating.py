"""Template helpers, available in every template once ``SparkAuth`` is initialised:

- ``spark_user``: the signed-in :class:`~flask_spark.SparkUser`, or an anonymous user;
- ``spark_logged_in``: True when someone is signed in;
- ``spark_login_url(next=None)``: the sign-in URL (``next``: where to land afterwards);
- ``spark_logout_url()``: where the sign-out form posts;
- ``spark_csrf_token()``, ``spark_csrf_field()``: the token the sign-out and revoke forms carry,
  and its field name (Flask-WTF's when its ``CSRFProtect`` is active).

And the macros ``login_button``, ``logout_form`` and ``revoke_form``::

    {% from "spark/macros.html" import login_button, logout_form %}
"""

from __future__ import annotations

from typing import Any

from flask import Flask, has_request_context

from ..core.user import AnonymousUser
from .context import csrf_field_name, csrf_token, current_user, is_logged_in, login_url, logout_url


def register_template_helpers(app: Flask) -> None:
    """Make the helpers available in every template (and ``spark/macros.html`` importable)."""

    @app.context_processor
    def spark_context() -> dict[str, Any]:
        if not has_request_context():  # e.g. an e-mail rendered by a background job
            return {"spark_user": AnonymousUser(), "spark_logged_in": False}
        return {"spark_user": current_user(), "spark_logged_in": is_logged_in()}

    app.add_template_global(login_url, "spark_login_url")
    app.add_template_global(logout_url, "spark_logout_url")
    app.add_template_global(csrf_token, "spark_csrf_token")
    app.add_template_global(csrf_field_name, "spark_csrf_field")
