"""The My Flexmls example app, page by page, through the Flask test client and a real sign-in."""

from __future__ import annotations

import functools
import html
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, abort

from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.testing.redis_server import free_port

from .helpers import FlowClient, closed_port, query

ROOT = Path(__file__).resolve().parent.parent
MEMBER = MEMBERS[0]


def load_example(config: dict[str, Any], **options: Any) -> Flask:
    """The example app; ``options`` go to its ``SparkAuth`` (as a test's would)."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import myflexmls
    finally:
        sys.path.remove(str(ROOT / "examples"))
    plain = myflexmls.SparkAuth
    myflexmls.SparkAuth = functools.partial(plain, **options)  # type: ignore[misc]
    try:
        return myflexmls.create_app(config)
    finally:
        myflexmls.SparkAuth = plain  # type: ignore[misc]


@pytest.fixture
def example(config: dict[str, Any]) -> Flask:
    return load_example(config)


@pytest.fixture
def browser(example: Flask, sandbox: SandboxServer) -> FlowClient:
    return FlowClient(example, sandbox)


@pytest.fixture
def signed_in(browser: FlowClient) -> FlowClient:
    response = browser.login("/dashboard", MEMBER.id)
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    return browser


def text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def cards(page: str) -> list[str]:
    return re.findall(r'<a class="card listing".*?</a>', page, flags=re.S)


def prices(page: str) -> list[int]:
    return [
        int(p.replace(",", "")) for p in re.findall(r'<span class="price">\$([\d,]+)</span>', page)
    ]


# -- signed out ------------------------------------------------------------------------------


def test_home_signed_out(browser: FlowClient) -> None:
    page = text(browser.get("/"))
    assert "Your Flexmls, anywhere" in page
    assert 'href="/spark/login?next=/dashboard">Sign in with Flexmls</a>' in page
    assert ">Demo</span>" in page  # the issuer is the loopback sandbox
    assert "Sign out" not in page
    for developer_words in ("opaque", "RESO", "Spark API", "my/account", "_filter", "<code>"):
        assert developer_words not in page


def test_protected_pages_ask_to_sign_in(browser: FlowClient) -> None:
    for path in ("/dashboard", "/listings?city=Fargo", "/property/x", "/saved-searches"):
        response = browser.get(path)
        assert response.status_code == 401, path
        page = text(response)
        assert "Please sign in" in page
        assert f"/spark/login?next={path.replace('=', '%3D')}" in page
    api = browser.get("/dashboard", headers={"Accept": "application/json"})
    assert api.status_code == 401
    assert api.json == {"error": "login_required"}


def test_sign_in_returns_to_the_page_asked_for(browser: FlowClient) -> None:
    response = browser.login("/listings?city=Fargo", MEMBERS[2].id)
    assert response.headers["Location"] == "/listings?city=Fargo"
    assert "Alex Kim" in text(browser.get("/listings?city=Fargo"))


def test_cancelled_sign_in_has_a_friendly_page(browser: FlowClient) -> None:
    callback = browser.authorize(browser.start_login("/dashboard"), consent="deny")
    assert query(callback)["error"] == "access_denied"
    response = browser.callback(callback)
    assert response.status_code == 400
    page = text(response)
    assert "<h1>Sign-in cancelled</h1>" in page
    assert "Nothing was shared" in page
    assert "Try signing in again" in page
    assert "Traceback" not in page


def test_failed_sign_in_has_a_friendly_page(example: Flask, sandbox: SandboxServer) -> None:
    """A used sign-in response in a browser that is not signed in: refused, in plain words."""
    first, other = FlowClient(example, sandbox), FlowClient(example, sandbox)
    callback = first.authorize(first.start_login())
    assert first.callback(callback).status_code == 302
    replay = other.callback(callback)  # the same response again, elsewhere: refused
    assert replay.status_code == 400
    page = text(replay)
    assert "<h1>Sign-in failed</h1>" in page
    assert "Please sign in again" in page
    shown, technical = page.split("<summary>Technical details</summary>")
    assert "(400 · state_mismatch)" in technical  # the code only under "Technical details"
    assert "state_mismatch" not in shown
    assert "cookie" not in shown  # flask-spark's developer words stay there too
    assert 'href="/"' in page  # a way back


def test_reloading_the_callback_while_signed_in_goes_to_the_dashboard(
    signed_in: FlowClient, sandbox: SandboxServer
) -> None:
    callback = signed_in.authorize(signed_in.start_login("/listings"))
    assert signed_in.callback(callback).status_code == 302
    sid = signed_in.cookie()
    replay = signed_in.callback(callback)
    assert replay.status_code == 302
    assert replay.headers["Location"] == "/dashboard"  # SPARK_LOGIN_DEFAULT_NEXT
    assert signed_in.cookie() == sid
    assert "Sign-in failed" not in text(signed_in.get("/dashboard"))


# -- errors in the app's layout --------------------------------------------------------------


def in_layout(response: Any, status: int, heading: str) -> str:
    """The page is the app's own (header, footer, a way back), not a bare Werkzeug page."""
    assert response.status_code == status, response.get_data(as_text=True)
    page = text(response)
    assert f"<h1>{heading}</h1>" in page
    assert '<header class="top">' in page
    assert "<footer>" in page
    assert 'href="/">Home</a>' in page
    assert f"({status}" in page
    return page


def test_error_pages_in_the_app_layout(config: dict[str, Any], sandbox: SandboxServer) -> None:
    example = load_example(config)

    @example.get("/boom/<int:status>")
    def boom(status: int) -> None:
        abort(status)

    signed_in = FlowClient(example, sandbox)
    signed_in.login()

    for path in (
        "/nope",
        "/property/NOPE123",
        "/listings?saved=bogus",
        "/listings?saved=x'y",
        "/listings?saved=bogus%0A",  # a trailing newline is no key either
        "/property/NOPE123%0A",
    ):
        page = in_layout(signed_in.get(path), 404, "Page not found")
        assert "Back to your dashboard" in page
    assert "cannot be opened directly" in in_layout(
        signed_in.get("/spark/logout"), 405, "Not available like this"
    )
    in_layout(signed_in.get("/boom/500"), 500, "Something went wrong")
    in_layout(signed_in.get("/boom/503"), 503, "Back soon")
    assert signed_in.get("/nope", headers={"Accept": "application/json"}).json == {
        "error": "not_found",
        "message": HTTP_ERROR_404,
    }


HTTP_ERROR_404 = (
    "There is nothing here. The listing may have been removed, or the link is mistyped."
)


def test_api_errors_in_plain_words(config: dict[str, Any], sandbox: SandboxServer) -> None:
    flow = FlowClient(load_example(config, retry_max=0), sandbox)
    flow.login()
    sandbox.faults(rate_limit_next=1)
    page = in_layout(flow.get("/saved-searches"), 429, "Flexmls is busy")
    assert "Flexmls is busy right now; please try again in a minute." in page
    assert "(429 · 1550)" in page
    assert "<summary>Technical details</summary>" in page


def visible(page: str) -> str:
    """The page without its "Technical details"."""
    return re.sub(r'<details class="technical">.*?</details>', "", page, flags=re.S)


def test_sign_in_with_flexmls_down_says_you_are_not_signed_in(
    browser: FlowClient, sandbox: SandboxServer
) -> None:
    callback = browser.authorize(browser.start_login("/dashboard"))
    sandbox.faults(token_endpoint_status=503)
    response = browser.callback(callback)
    assert response.status_code == 502
    page = visible(text(response))
    assert "<h1>Flexmls is not answering</h1>" in page
    assert "so you could not be signed in" in page
    assert "kept" not in page
    assert "Sign out" not in page
    assert ">Try signing in again</a>" in page
    assert "502" not in page


def test_signing_in_while_flexmls_is_unreachable_is_one_calm_message(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    app = load_example({**config, "SPARK_ISSUER": down}, retry_max=0)
    response = app.test_client().get("/spark/login?next=/dashboard")
    assert response.status_code in (502, 503, 504)
    page = visible(text(response))
    assert "<h1>Flexmls is not answering</h1>" in page
    assert "so you could not be signed in" in page
    assert ">Try signing in again</a>" in page
    assert not re.search(r"\b50\d\b", re.sub(r"<[^>]+>", "", page))  # no status code shown


def test_sign_out_with_flexmls_down_is_one_calm_message(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    app = load_example(config, revocation_endpoint=f"http://127.0.0.1:{closed_port()}/")
    flow = FlowClient(app, sandbox)
    flow.login()
    token = re.search(r'name="spark_csrf_token" value="([^"]+)"', text(flow.get("/dashboard")))
    assert token is not None
    sandbox.faults(force_error_next=1, force_error={"status": 503, "code": 1510})
    response = flow.post("/spark/logout", data={"spark_csrf_token": token.group(1)})
    assert response.status_code == 200
    page = text(response)
    assert "<h1>You are signed out</h1>" in page
    assert 'class="flash"' not in page  # one message, not a flash and a card
    assert "revocation_pending" not in page
    assert "200" not in re.sub(r"<[^>]+>", "", page)
    assert "You are signed out" not in text(flow.get("/"))  # nor a flash on the next page


def test_a_failing_dashboard_offers_to_try_again(
    signed_in: FlowClient, sandbox: SandboxServer
) -> None:
    sandbox.faults(force_error_next=10, force_error={"status": 500, "code": 1999})  # past retries
    page = text(signed_in.get("/dashboard"))
    assert "Back to your dashboard" not in page  # it is the page that failed
    assert 'class="button" href="/dashboard">Try again</a>' in page


def test_a_refusal_does_not_say_try_again(signed_in: FlowClient, sandbox: SandboxServer) -> None:
    sandbox.faults(force_error_next=1, force_error={"status": 403, "code": 1500})
    response = signed_in.get("/saved-searches")
    assert response.status_code == 403
    page = visible(text(response))
    assert "<h1>No access</h1>" in page
    assert "try again" not in page.lower()


# -- signed in -------------------------------------------------------------------------------


def test_dashboard(signed_in: FlowClient) -> None:
    response = signed_in.get("/dashboard")
    assert response.status_code == 200
    page = text(response)
    assert f"Welcome, {MEMBER.name}" in page
    account = page.split('id="account"', 1)[1].split("</section>", 1)[0]
    for value in (MEMBER.name, MEMBER.office_name, MEMBER.mls_id, MEMBER.email, MEMBER.phone):
        assert value in account
    assert len(re.findall(r'href="/property/\w+"', page)) == 5
    assert 'action="/spark/logout"' in page
    assert 'action="/spark/revoke"' not in page  # "Disconnect" asks first, on its own page
    assert 'href="/disconnect">Disconnect Flexmls' in page
    assert 'class="active" aria-current="page">Dashboard' in page


def test_dashboard_calls_run_at_once(signed_in: FlowClient, sandbox: SandboxServer) -> None:
    """The account, the top homes and the member's listings are asked for together."""
    with sandbox.hold("api") as gate:
        pool = ThreadPoolExecutor(1)
        page = pool.submit(signed_in.get, "/dashboard")
        pool.shutdown(wait=False)
        assert gate.wait_arrivals(3, timeout=30), gate.arrivals  # one by one: never past 1
        gate.release()
        assert page.result(timeout=30).status_code == 200


def test_dashboard_market_picture_is_server_side_svg(signed_in: FlowClient) -> None:
    """The member's own listings by status and by price, drawn as SVG with the figures in
    the markup (for screen readers), from the sandbox's ``my/listings``."""
    from flask_spark.sandbox.listings_data import listings

    mine = [
        r["StandardFields"] for r in listings() if r["StandardFields"]["ListAgentId"] == MEMBER.id
    ]
    assert mine
    page = text(signed_in.get("/dashboard"))
    market = page.split('id="market"', 1)[1].split("</section>", 1)[0]
    assert f"All {len(mine)} of your listings" in market
    assert market.count("<svg") == 2
    assert "<script" not in page
    for status in ("Active", "Pending", "Closed"):
        count = sum(f["MlsStatus"] == status for f in mine)
        assert f"{status} {count}" in market  # the aria-label carries every figure
    drawn = [int(n) for n in re.findall(r'class="count">(\d+)<', market)]
    assert sum(drawn) == 2 * len(mine)  # every listing once by status, once by price


def test_dashboard_without_listings_of_ones_own(browser: FlowClient) -> None:
    browser.login("/dashboard", MEMBERS[2].id)  # Alex Kim lists nothing
    page = text(browser.get("/dashboard"))
    assert "You have no listings of your own yet" in page
    assert "<svg viewBox" not in page


def test_disconnect_asks_first_and_works_without_javascript(signed_in: FlowClient) -> None:
    page = text(signed_in.get("/disconnect"))
    assert "<h1>Disconnect Flexmls?</h1>" in page
    assert 'action="/spark/revoke"' in page
    assert 'href="/dashboard">Cancel</a>' in page
    assert "<script" not in page


def test_listing_search_with_filters_and_pagination(signed_in: FlowClient) -> None:
    first = text(signed_in.get("/listings?city=Fargo&min_price=150,000&max_price=900000"))
    found = cards(first)
    assert len(found) == 12
    assert all("Fargo, ND" in card and "Active" in card for card in found)
    assert all(150_000 <= p <= 900_000 for p in prices(first))
    assert prices(first) == sorted(prices(first), reverse=True)
    total = int(re.search(r"([\d,]+) listings", first).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert total > 12
    assert "page 1 of" in first
    nxt = re.search(r'rel="next" href="([^"]+)"', first)
    assert nxt is not None
    page2 = text(signed_in.get(nxt.group(1)))
    assert "page 2 of" in page2
    assert 'value="Fargo"' in page2  # the form keeps the search
    assert set(cards(page2)).isdisjoint(cards(first))
    assert 'rel="prev"' in page2


def test_listing_search_by_status(signed_in: FlowClient) -> None:
    page = text(signed_in.get("/listings?status=Closed"))
    assert cards(page)
    assert all("Closed" in card for card in cards(page))
    assert "<option selected>Closed</option>" in page
    every = text(signed_in.get("/listings?status=Any"))
    assert '<option value="Any" selected>Any status</option>' in every
    assert {"Active", "Closed"} <= set(re.findall(r'class="badge (\w+)"', every))


def test_unknown_status_is_refused_in_words(signed_in: FlowClient) -> None:
    page = in_layout(signed_in.get("/listings?status=Bogus"), 400, "That request did not work")
    assert "There is no listing status called 'Bogus'" in page
    assert "Active, Pending, Closed or Any" in page


def test_page_numbers_are_clamped(signed_in: FlowClient) -> None:
    first = text(signed_in.get("/listings?city=Fargo"))
    pages = int(re.search(r"page 1 of (\d+)", first).group(1))  # type: ignore[union-attr]
    for asked in ("999", "99999999999999999999"):
        response = signed_in.get(f"/listings?city=Fargo&page={asked}")
        assert response.status_code == 302
        assert response.headers["Location"] == f"/listings?city=Fargo&page={pages}"
    last = text(signed_in.get(f"/listings?city=Fargo&page={pages}"))
    assert f"page {pages} of {pages}" in last
    for below in ("0", "-3", "two"):
        assert "page 1 of" in text(signed_in.get(f"/listings?city=Fargo&page={below}"))
    nothing = signed_in.get("/listings?city=Atlantis&page=5")
    assert nothing.headers["Location"] == "/listings?city=Atlantis&page=1"


def test_listing_search_input_cannot_inject_filter_syntax(
    signed_in: FlowClient, sandbox: SandboxServer
) -> None:
    calls = sandbox.counters()["api_calls"]
    response = signed_in.get("/listings", query_string={"city": "Fargo' Or City Eq 'Omaha"})
    assert response.status_code == 400
    page = text(response)
    assert "A city name has letters, spaces, dots and hyphens only." in page
    assert not cards(page)
    assert sandbox.counters()["api_calls"] == calls  # nothing was searched


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ({"min_price": "abc"}, "Enter the minimum price as a whole number of dollars"),
        ({"max_price": "-5"}, "Enter the maximum price as a whole number of dollars"),
        ({"min_price": "2.5"}, "Enter the minimum price as a whole number of dollars"),
        ({"min_price": "500000", "max_price": "100000"}, "below the minimum price"),
    ],
)
def test_price_boxes_that_are_not_understood_are_refused_in_words(
    signed_in: FlowClient, query: dict[str, str], said: str
) -> None:
    response = signed_in.get("/listings", query_string={"city": "Fargo", **query})
    assert response.status_code == 400
    page = text(response)
    assert said in page
    assert 'role="alert">This search could not be run' in page
    field = next(iter(query)) if "below" not in said else "max_price"
    assert f'aria-invalid="true" aria-describedby="{field}-problem"' in page
    assert 'value="Fargo"' in page  # the form keeps what was typed
    assert not cards(page)
    understood = signed_in.get("/listings", query_string={"min_price": "$200,000"})
    assert understood.status_code == 200
    assert cards(text(understood))


def test_listing_search_without_results(signed_in: FlowClient) -> None:
    page = text(signed_in.get("/listings?city=Atlantis"))
    assert "0 listings" in page
    assert '<p class="muted empty">No listings match this search' in page  # spans the grid
    assert 'class="pager"' not in page


def test_property_detail_and_back_link(signed_in: FlowClient) -> None:
    listings = text(signed_in.get("/listings?city=Bismarck&page=2"))
    href = re.search(r'class="card listing" href="([^"]+)"', listings)
    assert href is not None
    response = signed_in.get(href.group(1))
    assert response.status_code == 200
    page = text(response)
    assert "Bismarck, ND" in page
    assert re.search(r'class="price big">\$[\d,]+<', page)
    assert "bedrooms" in page
    assert "RESO" not in page
    back = re.search(r'class="back" href="([^"]+)"', page)
    assert back is not None
    assert back.group(1) in ("/listings?city=Bismarck&page=2", "/listings?page=2&city=Bismarck")


def test_listing_photos_from_reso_media(signed_in: FlowClient, sandbox: SandboxServer) -> None:
    """Cards show each listing's first RESO ``Media`` photo (one RESO call per page), and the
    property page all of its photos, in order, with their descriptions."""
    calls = sandbox.counters()["reso_calls"]
    page = text(signed_in.get("/listings?city=Fargo"))
    found = cards(page)
    assert sandbox.counters()["reso_calls"] == calls + 1
    photos = [re.search(r'<img src="([^"]+)"', card) for card in found]
    assert all(photos)
    for match in photos:
        assert match is not None
        assert match.group(1).startswith(sandbox.url + "/photos/")
        assert match.group(1).endswith("/1.svg")  # the first in Order
    assert requests.get(photos[0].group(1), timeout=10).status_code == 200  # type: ignore[union-attr]
    href = re.search(r'class="card listing" href="/property/(\w+)', page)
    assert href is not None
    detail = text(signed_in.get(f"/property/{href.group(1)}"))
    gallery = re.findall(r'<img src="([^"]+)" alt="([^"]+)"', detail)
    assert len(gallery) >= 2
    assert [url.rsplit("/", 1)[1] for url, _ in gallery] == [
        f"{n}.svg" for n in range(1, len(gallery) + 1)
    ]
    assert gallery[0][1] == "Front of the home"
    assert f"{len(gallery)} photos" in detail


def test_listings_without_photos_still_work(config: dict[str, Any], sandbox: SandboxServer) -> None:
    """The RESO Web API is unreachable: the cards show a drawn house, not an empty block."""
    flow = FlowClient(
        load_example(
            {
                **config,
                "SPARK_RESO_BASE_URL": f"http://127.0.0.1:{closed_port()}/Reso/OData/",
            },
            retry_max=0,
        ),
        sandbox,
    )
    flow.login()
    response = flow.get("/listings?city=Fargo")
    assert response.status_code == 200
    found = cards(text(response))
    assert len(found) == 12
    for card in found:
        assert "<img" not in card
        assert 'class="photo none"' in card
        assert '<svg class="house"' in card


def test_property_not_found(signed_in: FlowClient) -> None:
    assert signed_in.get("/property/nope").status_code == 404
    assert signed_in.get("/property/x'y").status_code == 404


def test_saved_searches_and_running_one(signed_in: FlowClient) -> None:
    page = text(signed_in.get("/saved-searches"))
    names = re.findall(r"<strong>([^<]+)</strong>", page)
    assert names
    link = re.search(r'href="(/listings\?saved=\w+)"', page)
    assert link is not None
    results = signed_in.get(link.group(1))
    assert results.status_code == 200
    shown = text(results)
    assert f"Saved search <strong>{names[0]}</strong>" in shown
    assert "<summary>Show the filter</summary>" in shown
    assert "That search did not work" not in shown
    assert signed_in.get("/listings?saved=unknown0").status_code == 404


def test_saved_searches_are_described_in_words(signed_in: FlowClient) -> None:
    page = text(signed_in.get("/saved-searches"))
    words = re.findall(r'<span class="words">([^<]+)</span>', page)
    filters = re.findall(r"<code>([^<]+)</code>", page)
    assert words
    assert len(filters) >= len(words)
    assert page.count("<summary>Show the filter</summary>") == len(filters)


@pytest.mark.parametrize(
    ("sparkql", "words"),
    [
        ("City Eq 'Fargo' And ListPrice Ge 200000.0", "in Fargo, from $200,000"),
        (
            "PropertyType Eq 'A' And City Eq 'Fargo' And MlsStatus Eq 'Active' "
            "And ListPrice Le 300000.0",
            "active residential, in Fargo, up to $300,000",
        ),
        ("NewConstructionYN Eq true And BedsTotal Ge 4", "new construction, 4+ bedrooms"),
        (
            "StateOrProvince Eq 'ND','SD' And ListPrice Bt 200000.0,400000.0",
            "in ND or SD, $200,000\N{EN DASH}$400,000",
        ),
        (
            "ModificationTimestamp Gt 2024-09-01T00:00:00Z Not MlsStatus Eq 'Closed'",
            "not closed, changed since 2024-09-01",
        ),
        ("City Eq 'Fargo' Or City Eq 'Minot'", None),  # Or: not described, never guessed
        ("(City Eq 'Fargo')", None),
        ("YearBuilt Ge 2000", None),
        ("", None),
    ],
)
def test_sparkql_in_words(sparkql: str, words: str | None) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from myflexmls.searches import describe
    finally:
        sys.path.remove(str(ROOT / "examples"))
    assert describe(sparkql) == words


def test_expired_session_page(signed_in: FlowClient, sandbox: SandboxServer) -> None:
    """The sign-in ended at the provider (the refresh is refused): a friendly page."""
    with sandbox.state.lock:
        for record in sandbox.state.refresh_tokens.values():
            record.revoked = True
    sandbox.expire_tokens()
    response = signed_in.get("/listings?city=Fargo")
    assert response.status_code == 401
    page = text(response)
    assert "Your sign-in has ended" in page
    assert "Sign out" not in page  # the header agrees: nobody is signed in
    assert "/spark/login?next=/listings?city%3DFargo" in page
    assert sandbox.counters()["refresh_failures"] + sandbox.counters()["token_errors"] >= 1
    # The session is gone: the next page asks to sign in.
    assert "Please sign in" in text(signed_in.get("/dashboard"))


def test_access_revoked_at_flexmls_ends_the_sign_in(
    signed_in: FlowClient, sandbox: SandboxServer
) -> None:
    """The member disconnected the app in Flexmls: the API refuses the token and the refresh
    is refused too, so the sign-in has ended, and the page and its header say so."""
    with sandbox.state.lock:
        for token in list(sandbox.state.refresh_tokens):
            sandbox.state.revoke_refresh_token(token)  # and its access tokens
    response = signed_in.get("/dashboard")
    assert response.status_code == 401
    page = text(response)
    assert "Your sign-in has ended" in page
    assert "Sign out" not in page
    assert ">Sign in again</a>" in page


def test_a_refused_token_while_signed_in_never_says_expired(
    signed_in: FlowClient, sandbox: SandboxServer
) -> None:
    """Code 1000 while the session lives on: the header still shows the user, so the page
    must not say the session expired; it asks to sign in again."""
    sandbox.faults(force_error_next=1, force_error={"status": 401, "code": 1000})
    response = signed_in.get("/saved-searches")
    assert response.status_code == 401
    page = text(response)
    assert "expired" not in page
    assert "ended" not in page
    assert "<h1>Flexmls asks you to sign in again</h1>" in page
    assert "Sign out" in page  # still signed in, and the page agrees
    assert ">Sign in again</a>" in page


def test_sign_out(signed_in: FlowClient, sandbox: SandboxServer) -> None:
    page = text(signed_in.get("/dashboard"))
    token = re.search(
        r'action="/spark/logout">\s*<input type="hidden" name="spark_csrf_token" value="([^"]+)"',
        page,
    )
    assert token is not None
    response = signed_in.post("/spark/logout", data={"spark_csrf_token": token.group(1)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = text(signed_in.get("/"))
    assert "Sign in with Flexmls" in home
    assert MEMBER.name not in home
    assert '<p class="flash" role="status">You are signed out.' in home
    assert "You are signed out" not in text(signed_in.get("/"))  # said once
    assert signed_in.get("/dashboard").status_code == 401
    assert sandbox.counters()["revocations"] == 1


def test_disconnect(signed_in: FlowClient, sandbox: SandboxServer) -> None:
    page = text(signed_in.get("/disconnect"))
    token = re.search(
        r'action="/spark/revoke">\s*<input type="hidden" name="spark_csrf_token" value="([^"]+)"',
        page,
    )
    assert token is not None
    assert (
        signed_in.post("/spark/revoke", data={"spark_csrf_token": token.group(1)}).status_code
        == 302
    )
    assert sandbox.counters()["revocations"] == 2
    assert "My Flexmls is disconnected from your Flexmls account" in text(signed_in.get("/"))
    assert signed_in.get("/dashboard").status_code == 401


def test_healthz(browser: FlowClient) -> None:
    assert browser.get("/healthz").json == {"status": "ok", "user": "anonymous"}
    browser.login()
    assert browser.get("/healthz").json == {"status": "ok", "user": MEMBER.id}


def test_pages_never_carry_tokens(signed_in: FlowClient, sandbox: SandboxServer) -> None:
    pages = [
        text(signed_in.get(p))
        for p in ("/", "/dashboard", "/listings", "/saved-searches", "/healthz")
    ]
    with sandbox.state.lock:
        tokens = set(sandbox.state.access_tokens) | set(sandbox.state.refresh_tokens)
    assert tokens
    for page in pages:
        assert not any(token in page for token in tokens)


@pytest.mark.slow
def test_the_demo_command_serves_the_app() -> None:
    """``python examples/demo.py`` (what ./scripts/demo runs): Redis, sandbox and app."""
    port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_")}
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "demo.py"),
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    serving = threading.Event()

    def read_output() -> None:
        # Werkzeug prints "Running on <url>" once its socket is bound: the event to wait for.
        for raw in process.stdout:  # type: ignore[union-attr]
            lines.append(raw.decode())
            if f"Running on http://127.0.0.1:{port}" in lines[-1]:
                serving.set()
        serving.set()  # the demo exited: stop waiting, the assertion below says why

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        assert serving.wait(300), "the demo printed nothing for 5 minutes"
        assert process.poll() is None, "".join(lines)
        home = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert home.status_code == 200
        assert "Sign in with Flexmls" in home.text
        login = requests.get(
            f"http://127.0.0.1:{port}/spark/login?next=/dashboard",
            allow_redirects=False,
            timeout=30,
        )
        assert login.headers["Location"].startswith(f"http://127.0.0.1:{sandbox_port}/")
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=30)
    printed = "".join(lines)
    # The truth about debug mode (the app runs in debug, and Flask's banner agrees) and ports.
    assert "Debug mode is on" in printed
    assert "Debug mode: on" in printed
    assert "Debug mode: off" not in printed
    assert f"Ports: PORT={port} SANDBOX_PORT={sandbox_port}" in printed


# -- one value per fact ----------------------------------------------------------------------


def example_module(name: str) -> Any:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return __import__(f"myflexmls.{name}", fromlist=["_"])
    finally:
        sys.path.remove(str(ROOT / "examples"))


def test_a_listing_has_the_same_bathrooms_on_its_card_and_its_page(
    signed_in: FlowClient,
) -> None:
    from flask_spark.sandbox.listings_data import listings

    halves = [r["Id"] for r in listings() if r["StandardFields"]["BathsHalf"]]
    page = text(signed_in.get("/listings?status=Any&city=Fargo"))
    shown = 0
    for card in cards(page):
        key = re.search(r'href="/property/(\w+)', card)
        baths = re.search(r"· ([\d.]+) ba ·", card)
        if key is None or baths is None or key.group(1) not in halves:
            continue
        detail = text(signed_in.get(f"/property/{key.group(1)}"))
        assert f"<strong>{baths.group(1)}</strong><span>bathrooms</span>" in detail
        assert "." in baths.group(1)  # a half bath counts a half on both
        shown += 1
    assert shown


def test_commercial_listings_are_drawn_as_buildings() -> None:
    from flask_spark.sandbox.listings_data import properties
    from flask_spark.sandbox.media import media_of, photo_svg

    for kind, never in (("Commercial Sale", "Living room"), ("Land", "Kitchen")):
        listing = next(p for p in properties() if p["PropertyType"] == kind)
        views = [m["ShortDescription"] for m in media_of(listing["ListingKey"])]
        assert never not in views
        assert "Bedroom" not in views
    office = next(p for p in properties() if p["PropertyType"] == "Commercial Sale")
    assert "polygon" not in photo_svg(office, 1)  # a flat roof, not a house's gable


def test_price_buckets_read_plainly() -> None:
    market = example_module("market")
    labels = [
        bar.label for bar in market.picture([{"ListPrice": p} for p in (90e3, 150e3, 390e3)]).prices
    ]
    assert labels[0] == "Under $100k"
    assert labels[1:] == ["$100k\N{EN DASH}$200k", "$200k\N{EN DASH}$300k", "$300k\N{EN DASH}$400k"]
    assert not any("$0k" in label for label in labels)


def test_saved_searches_are_described_by_their_filter_not_their_name(
    signed_in: FlowClient,
) -> None:
    page = text(signed_in.get("/saved-searches"))
    rows = re.findall(r"<strong>([^<]+)</strong>\s*<span class=\"words\">([^<]+)</span>", page)
    assert rows
    for name, words in rows:
        assert words.strip().lower() != name.lower()
    assert "Active residential, in Fargo, up to $300,000" in page or "4+ bedrooms" in page


def test_pages_cannot_be_framed_and_are_not_sniffed(signed_in: FlowClient) -> None:
    """A same-site page framing the disconnect page could have its click revoke the grant."""
    for path in ("/", "/dashboard", "/disconnect", "/listings", "/no-such-page"):
        headers = signed_in.get(path).headers
        assert headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert "no-store" in headers["Cache-Control"], path  # each shows who is signed in
