"""My Flexmls: the flask-spark example app.

Runs against the local sandbox by default (``./scripts/demo``) and against the real Spark
Platform when ``SPARK_CLIENT_ID``, ``SPARK_CLIENT_SECRET`` and friends are set (see README).
"""

from __future__ import annotations

import os
import re
from typing import Any

from flask import Flask, abort, render_template, request
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_spark import (
    FilterError,
    NotFound,
    SessionExpired,
    SparkAuth,
    spark_api,
    spark_login_required,
    spark_user,
)

PAGE_SIZE = 12
STATUSES = ("Active", "Pending", "Closed")
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app; configuration comes from ``SPARK_*`` environment variables, then ``config``."""
    app = Flask(__name__)
    app.config.update({k: v for k, v in os.environ.items() if k.startswith("SPARK_")})
    app.config.setdefault("SECRET_KEY", os.environ.get("FLASK_SECRET_KEY", "dev-only-secret"))
    app.config.setdefault("SPARK_USER_AGENT", "MyFlexmlsExample")
    app.config.update(config or {})
    if os.environ.get("BEHIND_PROXY"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    spark = SparkAuth(app)

    @spark.unauthorized_handler
    def signed_out() -> Any:
        if request.accept_mimetypes.best == "application/json":
            return {"error": "login_required"}, 401
        return render_template("signin.html", next=request.full_path.rstrip("?")), 401

    @app.errorhandler(SessionExpired)
    def session_expired(exc: SessionExpired) -> Any:
        return render_template("signin.html", next=request.full_path, expired=True), 401

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/dashboard")
    @spark_login_required
    def dashboard() -> str:
        account = spark_api.get("my/account").first() or {}
        homes = spark_api.reso.get("Property", params={"$top": 4, "$orderby": "ListPrice desc"})
        return render_template("dashboard.html", account=account, homes=homes.value)

    @app.get("/listings")
    @spark_login_required
    def listings() -> str:
        form = {
            "city": request.args.get("city", "").strip()[:60],
            "status": request.args.get("status", "Active"),
            "min_price": request.args.get("min_price", "").strip(),
            "max_price": request.args.get("max_price", "").strip(),
        }
        page = max(1, request.args.get("page", 1, type=int) or 1)
        params = {
            "_limit": PAGE_SIZE,
            "_page": page,
            "_pagination": 1,
            "_orderby": "-ListPrice",
            "_select": "ListingKey,ListingId,ListPrice,City,StateOrProvince,BedsTotal,"
            "BathsTotal,MlsStatus,UnparsedAddress",
        }
        spark_filter = build_filter(form)
        if spark_filter:
            params["_filter"] = spark_filter
        error = None
        results: list[Any] = []
        pagination: dict[str, Any] = {}
        try:
            response = spark_api.get("listings", params=params)
            results, pagination = response.results, response.pagination or {}
        except FilterError as exc:
            error = exc.message
        return render_template(
            "listings.html",
            form=form,
            statuses=STATUSES,
            results=results,
            pagination=pagination,
            page=page,
            error=error,
        )

    @app.get("/property/<key>")
    @spark_login_required
    def property_detail(key: str) -> str:
        if not _KEY.match(key):
            abort(404)
        try:
            home = spark_api.reso.get(f"Property('{key}')").value
        except NotFound:
            abort(404)
        return render_template("property.html", home=home)

    @app.get("/saved-searches")
    @spark_login_required
    def saved_searches() -> str:
        searches = spark_api.get("savedsearches").results
        return render_template("saved_searches.html", searches=searches)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "user": spark_user.id or "anonymous"}

    return app


def build_filter(form: dict[str, str]) -> str:
    """A SparkQL ``_filter`` from the search form (values validated, strings quoted)."""
    clauses: list[str] = []
    if form["status"] in STATUSES:
        clauses.append(f"MlsStatus Eq '{form['status']}'")
    city = re.sub(r"[^A-Za-z .-]", "", form["city"])
    if city:
        clauses.append(f"City Eq '{city}'")
    for field, op in (("min_price", "Ge"), ("max_price", "Le")):
        value = form[field].replace(",", "")
        if value.isdigit():
            clauses.append(f"ListPrice {op} {int(value)}.0")
    return " And ".join(clauses)
