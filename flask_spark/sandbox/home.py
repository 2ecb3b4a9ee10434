"""The sandbox's home page (``GET /``): who can sign in, what it serves, how to break it.

The URL the demo prints should not be a bare 404: this page lists the demo members, the
client credentials to configure, every endpoint (read from the URL map, so it never goes
stale), the fault switches with their current values, and links to the docs.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, render_template

from .auth import current_state
from .members import MEMBERS

bp = Blueprint("sandbox_home", __name__)

DOCS_URL = "https://github.com/flask-spark/flask-spark/blob/main/docs/"

#: URL prefix -> the heading the home page lists its endpoints under.
SECTIONS = (
    ("/.well-known/", "OpenID provider"),
    ("/openid/", "OpenID provider"),
    ("/v1/", "Spark API"),
    ("/Reso/", "RESO Web API"),
    ("/photos/", "Listing photos (the Media records' MediaURL, no token needed)"),
    ("/_sandbox/", "Admin (JSON, loopback callers only)"),
)


def endpoints() -> dict[str, list[tuple[str, str]]]:
    """``{section: [(methods, path), ...]}`` for every route of the sandbox app."""
    found: dict[str, list[tuple[str, str]]] = {title: [] for _, title in SECTIONS}
    for rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        title = next((t for prefix, t in SECTIONS if rule.rule.startswith(prefix)), None)
        if title is None:
            continue
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        # A Spark API route takes every method to answer the wrong ones in Spark's format.
        path = re.sub(r"<any\(([^)]*)\):\w+>", r"{\1}", rule.rule)  # <any(A,B):x> -> {A,B}
        path = re.sub(r"<\w+:(\w+)>", r"<\1>", path)  # <path:token> -> <token>
        entry = (" ".join(methods) if len(methods) <= 2 else "", path)
        if entry not in found[title]:
            found[title].append(entry)
    return found


@bp.get("/")
def home() -> str:
    """What this sandbox is and how to use it."""
    state = current_state()
    client = state.default_client
    return render_template(
        "home.html",
        issuer=state.issuer,
        client=client,
        lifetime=state.access_token_lifetime,
        members=MEMBERS,
        endpoints=endpoints(),
        faults=state.faults.as_dict(),
        docs=DOCS_URL,
    )
