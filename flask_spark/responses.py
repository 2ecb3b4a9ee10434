"""Error pages and JSON errors in one shape, chosen by what the client accepts."""

from __future__ import annotations

from flask import Response, jsonify, render_template, request


def wants_json() -> bool:
    """True when the request prefers JSON to HTML (API clients, fetch/XHR)."""
    if request.is_json or request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_response(status: int, title: str, message: str, *, code: str) -> Response:
    """A ``status`` answer with a message a user can act on: JSON or ``spark/error.html``."""
    if wants_json():
        response = jsonify(error=code, message=message)
    else:
        response = Response(
            render_template(
                "spark/error.html", status=status, title=title, message=message, code=code
            ),
            mimetype="text/html",
        )
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
