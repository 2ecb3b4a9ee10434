"""My Flexmls: the flask-spark example app.

Runs against the local sandbox by default (``./scripts/demo``) and against the real Spark
Platform when ``SPARK_CLIENT_ID``, ``SPARK_CLIENT_SECRET`` and friends are set (see README).
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_spark import (
    ResourceNotFound,
    SparkAPIError,
    SparkAuth,
    SparkUser,
    logged_out,
    spark_api,
    spark_login_required,
    spark_user,
)
from flask_spark.core.config import is_loopback_host
from flask_spark.core.errors import AuthenticationError, FilterError, SessionExpired

from .market import picture
from .searches import STATUSES, build_filter, describe

PAGE_SIZE = 12
#: Pages past this are never asked for (the API would refuse them anyway).
MAX_PAGE = 1000
SEARCH_ARGS = ("city", "status", "min_price", "max_price", "saved", "page")
LISTING_FIELDS = (
    "ListingKey,ListingId,ListPrice,City,StateOrProvince,PostalCode,StreetNumber,StreetName,"
    "UnparsedAddress,BedsTotal,BathsFull,BathsHalf,BathsTotal,BuildingAreaTotal,PropertyType,"
    "PropertySubType,MlsStatus"
)
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fullmatch: "$" would let a trailing newline in
CITY = re.compile(r"[A-Za-z][A-Za-z .-]*")
#: Plain words for the HTTP errors the app itself answers (flask-spark's come with their own).
HTTP_ERRORS = {
    400: ("That request did not work", "Something in the address is not right."),
    404: (
        "Page not found",
        "There is nothing here. The listing may have been removed, or the link is mistyped.",
    ),
    405: ("Not available like this", "This address cannot be opened directly."),
    500: ("Something went wrong", "Something went wrong on our side; please try again."),
    503: ("Back soon", "My Flexmls is unavailable right now; please try again in a minute."),
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app; configuration comes from ``SPARK_*`` environment variables, then ``config``."""
    app = Flask(__name__)
    app.config.update({k: v for k, v in os.environ.items() if k.startswith("SPARK_")})
    app.config.setdefault("SECRET_KEY", os.environ.get("FLASK_SECRET_KEY", "dev-only-secret"))
    app.config.setdefault("SPARK_USER_AGENT", "MyFlexmlsExample")
    app.config.setdefault("SPARK_LOGIN_DEFAULT_NEXT", "/dashboard")  # the landing page
    app.config.update(config or {})
    if os.environ.get("BEHIND_PROXY"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    spark = SparkAuth(app)
    issuer = spark.state(app).config.issuer
    sandbox = is_loopback_host(urlsplit(issuer).hostname)  # the local sandbox, not Flexmls

    api = urlsplit(spark.state(app).config.reso_base_url)
    photos = "https:" + (f" http://{api.netloc}" if api.scheme == "http" else "")
    csp = (
        f"default-src 'self'; img-src 'self' {photos}; object-src 'none'; base-uri 'self'; "
        "frame-ancestors 'none'"
    )

    @app.after_request
    def security_headers(response: Response) -> Response:
        """The recipe of flask-spark's security page; listing photos come from the API's
        media hosts (HTTPS in production, the sandbox on loopback)."""
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.context_processor
    def helpers() -> dict[str, Any]:
        return {"sandbox": sandbox, "street": street, "facts": facts, "baths": baths}

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

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        """404, 405, 400... in the app's own layout (the same template as flask-spark's errors)."""
        return problem(exc.code or 500, exc.description if exc.code == 400 else None)

    @app.errorhandler(InternalServerError)
    def server_error(exc: InternalServerError) -> Any:
        """An unhandled exception (outside debug, where the debugger shows it instead)."""
        return problem(500)

    @logged_out.connect_via(app)
    def confirm_sign_out(sender: Flask, user: SparkUser, reason: str, **extra: Any) -> None:
        """Say what happened on the next page: flask-spark redirects to SPARK_LOGOUT_REDIRECT."""
        if request and request.endpoint == "spark.revoke":
            flash("My Flexmls is disconnected from your Flexmls account, and you are signed out.")
        elif request and request.endpoint == "spark.logout":
            flash("You are signed out. See you soon!")

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/dashboard")
    @spark_login_required
    def dashboard() -> str:
        top_homes = {
            "$top": 5,
            "$orderby": "ListPrice desc",
            "$filter": "StandardStatus eq 'Active'",
            "$select": "ListingKey,UnparsedAddress,City,StateOrProvince,ListPrice",
        }
        my_listings = {"_limit": 25, "_pagination": 1, "_select": "ListPrice,MlsStatus"}
        account, homes, mine = spark_api.gather(  # the three calls at once
            lambda: spark_api.get("my/account"),
            lambda: spark_api.reso.get("Property", params=top_homes),
            lambda: spark_api.get("my/listings", params=my_listings),
        )
        total = (mine.pagination or {}).get("TotalRows")
        market = picture([r.get("StandardFields", {}) for r in mine.results], total)
        account = account.first() or {}
        return render_template("dashboard.html", account=account, homes=homes.value, market=market)

    @app.get("/disconnect")
    @spark_login_required
    def disconnect() -> str:
        """Ask first: the form on this page posts to flask-spark's revoke view (no JavaScript)."""
        return render_template("disconnect.html")

    @app.get("/listings")
    @spark_login_required
    def listings() -> Any:
        form = {
            "city": request.args.get("city", "").strip()[:60],
            "status": request.args.get("status", "Active"),
            "min_price": request.args.get("min_price", "").strip()[:15],
            "max_price": request.args.get("max_price", "").strip()[:15],
        }
        if form["status"] not in (*STATUSES, "Any"):
            abort(
                400,
                f"There is no listing status called {form['status'][:30]!r}: choose "
                f"{', '.join(STATUSES)} or Any.",
            )
        problems = form_problems(form)
        if problems:  # said next to the boxes; nothing is searched for a half-understood form
            return render_template(
                "listings.html", form=form, statuses=STATUSES, problems=problems, results=[]
            ), 400
        page = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_PAGE)
        params: dict[str, Any] = {
            "_limit": PAGE_SIZE,
            "_page": page,
            "_pagination": 1,
            "_orderby": "-ListPrice",
            "_select": LISTING_FIELDS,
        }
        saved = None
        saved_id = request.args.get("saved", "")
        if saved_id:
            if not _KEY.fullmatch(saved_id):
                abort(404)
            try:
                saved = spark_api.get(f"savedsearches/{saved_id}").first()
            except ResourceNotFound:
                abort(404)
            if saved is None:
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

        last = int(pagination.get("TotalPages") or 1)
        if page > last:  # "page 999 of 16": show the last page, at its own address
            return redirect(page_url(last))
        return render_template(
            "listings.html",
            form=form,
            statuses=STATUSES,
            results=results,
            pagination=pagination,
            page=page,
            page_url=page_url,
            saved=saved,
            described=describe(saved.get("Filter")) if saved else None,
            photos=card_photos(results),
            back=urlencode(query),
            error=error,
        )

    @app.get("/property/<key>")
    @spark_login_required
    def property_detail(key: str) -> str:
        if not _KEY.fullmatch(key):
            abort(404)
        try:
            home = spark_api.reso.get(f"Property('{key}')").value
        except ResourceNotFound:
            abort(404)
        try:
            media = spark_api.reso.get(f"Property('{key}')/Media").value
        except ResourceNotFound:
            media = []
        except SparkAPIError as exc:  # photos are a nicety: the page works without them
            if isinstance(exc, AuthenticationError):
                raise
            app.logger.info("No photos for %s: %s", key, exc.message)
            media = []
        return render_template(
            "property.html", home=home, photos=photo_urls(media), back_url=back_to_listings()
        )

    @app.get("/saved-searches")
    @spark_login_required
    def saved_searches() -> str:
        searches = spark_api.get("savedsearches").results
        return render_template("saved_searches.html", searches=searches, describe=describe)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "user": spark_user.id or "anonymous"}

    return app


def form_problems(form: dict[str, str]) -> dict[str, str]:
    """What the search form cannot take, by field: a price that is not a whole number of
    dollars, a minimum above the maximum, a city with characters no city name has."""
    problems = {}
    if form["city"] and not CITY.fullmatch(form["city"]):
        problems["city"] = "A city name has letters, spaces, dots and hyphens only."
    for field, label in (("min_price", "minimum"), ("max_price", "maximum")):
        if form[field] and price(form[field]) is None:
            problems[field] = f"Enter the {label} price as a whole number of dollars, like 250000."
    low, high = price(form["min_price"]), price(form["max_price"])
    if low is not None and high is not None and low > high:
        problems["max_price"] = "The maximum price is below the minimum price."
    return problems


def price(text: str) -> int | None:
    """``250000``, ``$250,000`` → 250000; None for anything else ("abc", "-5", "2.5")."""
    digits = text.replace(",", "").replace("$", "").strip()
    return int(digits) if digits.isascii() and digits.isdigit() else None


def card_photos(results: list[Any]) -> dict[str, str]:
    """Each listing's first photo (RESO ``Media``), by ListingKey: one RESO call per page.

    Photos are a nicety: when the call fails (or a listing has none) the card shows a drawn
    house instead, and the page still works.
    """
    keys = [str(r.get("StandardFields", {}).get("ListingKey") or "") for r in results]
    keys = [k for k in keys if _KEY.fullmatch(k)]
    if not keys:
        return {}
    try:
        found = spark_api.reso.get(
            "Property",
            params={
                "$filter": " or ".join(f"ListingKey eq '{k}'" for k in keys),
                "$select": "ListingKey",
                "$expand": "Media",
                "$top": len(keys),
            },
        )
    except SparkAPIError as exc:
        if isinstance(exc, AuthenticationError):
            raise
        current_app.logger.info("No listing photos: %s", exc.message)
        return {}
    photos = {}
    for record in found.value or []:
        urls = photo_urls(record.get("Media"))
        if urls and isinstance(record.get("ListingKey"), str):
            photos[record["ListingKey"]] = urls[0][0]
    return photos


def photo_urls(media: Any) -> list[tuple[str, str]]:
    """``(url, description)`` of a listing's RESO ``Media`` photos, in their ``Order``
    (http(s) URLs only)."""
    records = media if isinstance(media, list) else []
    photos = [
        m
        for m in records
        if isinstance(m, dict)
        and m.get("MediaCategory", "Photo") == "Photo"
        and isinstance(m.get("MediaURL"), str)
        and m["MediaURL"].startswith(("https://", "http://"))
    ]
    photos.sort(key=lambda m: m.get("Order") if isinstance(m.get("Order"), int) else 0)
    return [(m["MediaURL"], str(m.get("ShortDescription") or "")) for m in photos]


def problem(status: int, detail: str | None = None) -> Any:
    """An error page in the app's layout (``spark/error.html``), or JSON for API clients."""
    title, message = HTTP_ERRORS.get(status, HTTP_ERRORS[500 if status >= 500 else 400])
    if request.accept_mimetypes.best == "application/json":
        code = HTTP_STATUS_CODES.get(status, "error").lower().replace(" ", "_")
        return {"error": code, "message": detail or message}, status
    page = render_template(
        "spark/error.html", status=status, title=title, message=detail or message, code=""
    )
    return page, status


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


def baths(full: Any, half: Any, total: Any = None) -> str:
    """Bathrooms as one number everywhere (a half bath counts a half): ``2.5``; a dash when
    unknown. Cards (Spark ``BathsFull``/``BathsHalf``) and the property page (RESO
    ``BathroomsFull``/``BathroomsHalf``) say the same, whatever an MLS puts in its totals."""
    if isinstance(full, int | float):
        return f"{full + (half or 0) / 2:g}"
    return "\N{EN DASH}" if total is None else f"{float(total):g}"


def facts(beds: Any, bathrooms: str, area: Any) -> str:
    """``3 bd · 2.5 ba · 1,800 sq ft``, leaving out what is unknown."""
    parts = []
    if beds is not None:
        parts.append(f"{beds} bd")
    if bathrooms != "\N{EN DASH}":
        parts.append(f"{bathrooms} ba")
    if area:
        parts.append(f"{float(area):,.0f} sq ft")
    return " · ".join(parts) or "Details on request"
