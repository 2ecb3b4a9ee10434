"""My Flexmls: the flask-spark example app.

Runs against the local sandbox by default (``./scripts/demo``) and against the real Spark
Platform when ``SPARK_CLIENT_ID``, ``SPARK_CLIENT_SECRET`` and friends are set (see README).
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import Flask, abort, render_template, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_spark import ResourceNotFound, SparkAuth, spark_api, spark_login_required, spark_user
from flask_spark.core.config import is_loopback_host
from flask_spark.core.errors import AuthenticationError, FilterError, SessionExpired

PAGE_SIZE = 12
STATUSES = ("Active", "Pending", "Closed")
SEARCH_ARGS = ("city", "status", "min_price", "max_price", "saved", "page")
LISTING_FIELDS = (
    "ListingKey,ListingId,ListPrice,City,StateOrProvince,PostalCode,StreetNumber,StreetName,"
    "UnparsedAddress,BedsTotal,BathsTotal,BuildingAreaTotal,PropertySubType,MlsStatus"
)
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
    issuer = spark.state(app).config.issuer
    sandbox = is_loopback_host(urlsplit(issuer).hostname)  # the local sandbox, not Flexmls

    @app.context_processor
    def helpers() -> dict[str, Any]:
        return {"sandbox": sandbox, "street": street, "facts": facts}

    app.add_template_filter(money)
    app.add_template_filter(number)

    @spark.unauthorized_handler
    def signed_out() -> Any:
        if request.accept_mimetypes.best == "application/json":
            return {"error": "login_required"}, 401
        return render_template("signin.html", next=request.full_path.rstrip("?")), 401

    @app.errorhandler(SessionExpired)
    @app.errorhandler(AuthenticationError)
    def session_expired(exc: Exception) -> Any:
        """The sign-in ended (refresh refused), or Flexmls no longer accepts this app's token
        (e.g. the member disconnected it in Flexmls): offer to sign in again."""
        if isinstance(exc, AuthenticationError):
            app.logger.info("The Spark API refused the session's token: %s", exc.message)
        next_url = request.full_path.rstrip("?") if request.method == "GET" else None
        return render_template("signin.html", next=next_url, expired=True), 401

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/dashboard")
    @spark_login_required
    def dashboard() -> str:
        account = spark_api.get("my/account").first() or {}
        homes = spark_api.reso.get(
            "Property",
            params={
                "$top": 5,
                "$orderby": "ListPrice desc",
                "$filter": "StandardStatus eq 'Active'",
                "$select": "ListingKey,UnparsedAddress,City,StateOrProvince,ListPrice",
            },
        )
        return render_template("dashboard.html", account=account, homes=homes.value)

    @app.get("/listings")
    @spark_login_required
    def listings() -> str:
        form = {
            "city": request.args.get("city", "").strip()[:60],
            "status": request.args.get("status", "Active"),
            "min_price": request.args.get("min_price", "").strip()[:15],
            "max_price": request.args.get("max_price", "").strip()[:15],
        }
        page = max(1, request.args.get("page", 1, type=int) or 1)
        params: dict[str, Any] = {
            "_limit": PAGE_SIZE,
            "_page": page,
            "_pagination": 1,
            "_orderby": "-ListPrice",
            "_select": LISTING_FIELDS,
        }
        saved = None
        saved_id = request.args.get("saved", "")
        if _KEY.match(saved_id):
            try:
                saved = spark_api.get(f"savedsearches/{saved_id}").first()
            except ResourceNotFound:
                abort(404)
        spark_filter = saved.get("Filter") if saved else build_filter(form)
        if spark_filter:
            params["_filter"] = spark_filter
        error = None
        results: list[Any] = []
        pagination: dict[str, Any] = {}
        try:
            response = spark_api.get("listings", params=params)
            results, pagination = response.results, response.pagination or {}
        except FilterError as exc:
            error = f"That search did not work: {exc.message}"
        query: dict[str, Any] = {k: v for k, v in request.args.items() if k in SEARCH_ARGS and v}

        def page_url(number: int) -> str:
            return url_for("listings", **{**query, "page": number})

        return render_template(
            "listings.html",
            form=form,
            statuses=STATUSES,
            results=results,
            pagination=pagination,
            page=page,
            page_url=page_url,
            saved=saved,
            back=urlencode(query),
            error=error,
        )

    @app.get("/property/<key>")
    @spark_login_required
    def property_detail(key: str) -> str:
        if not _KEY.match(key):
            abort(404)
        try:
            home = spark_api.reso.get(f"Property('{key}')").value
        except ResourceNotFound:
            abort(404)
        return render_template("property.html", home=home, back_url=back_to_listings())

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
    city = re.sub(r"[^A-Za-z .-]", "", form["city"]).strip()
    if city:
        clauses.append(f"City Eq '{city}'")
    for field, op in (("min_price", "Ge"), ("max_price", "Le")):
        value = form[field].replace(",", "").replace("$", "")
        if value.isdigit():
            clauses.append(f"ListPrice {op} {int(value)}.0")
    return " And ".join(clauses)


def back_to_listings() -> str:
    """The listings page the user came from (only the known search arguments are kept)."""
    pairs = parse_qsl(request.args.get("back", "")[:500])
    query: dict[str, Any] = {k: v[:60] for k, v in pairs if k in SEARCH_ARGS and v}
    return url_for("listings", **query)


def money(value: Any) -> str:
    """``$1,234,500`` (or a dash when there is no price)."""
    if value is None:
        return "\N{EN DASH}"
    return f"${float(value):,.0f}"


def number(value: Any) -> str:
    """``3,110`` (or a dash)."""
    if value is None:
        return "\N{EN DASH}"
    return f"{float(value):,.0f}"


def street(fields: dict[str, Any]) -> str:
    """The street part of a listing's address."""
    if fields.get("StreetNumber") or fields.get("StreetName"):
        return " ".join(str(fields[k]) for k in ("StreetNumber", "StreetName") if fields.get(k))
    return str(fields.get("UnparsedAddress") or "").split(",")[0]


def facts(beds: Any, baths: Any, area: Any) -> str:
    """``3 bd · 2.5 ba · 1,800 sq ft``, leaving out what is unknown."""
    parts = []
    if beds is not None:
        parts.append(f"{beds} bd")
    if baths is not None:
        parts.append(f"{float(baths):g} ba")
    if area:
        parts.append(f"{float(area):,.0f} sq ft")
    return " · ".join(parts) or "Details on request"
