"""A real browser through the example app: Playwright drives headless Chromium (Debian's package,
another system Chromium or Chrome, or Playwright's own download: see ``tests/chromium.py``).

Home → "Sign in with Flexmls" → the sandbox's own login and consent pages → dashboard → listing
search with pagination → a property → sign out. On every page, page scripts must not be able to
read a token or the session cookie. Screenshots land in a temporary folder, or with
``SPARK_SCREENSHOTS=docs/_static/screenshots`` in the folder the README and the docs show.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.testing import sandbox_config
from flask_spark.testing.redis_server import RedisServer

from .chromium import INSTALL_HINT, find_chromium
from .conftest import FERNET_KEY

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get("SPARK_SCREENSHOTS") or tempfile.mkdtemp(prefix="spark-shots-"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MEMBER = MEMBERS[1]  # not the preselected one: the radio is really chosen

pytestmark = pytest.mark.browser


def chromium_path() -> str:
    """A system Chromium/Chrome or Playwright's; a missing browser is a failure, not a skip."""
    found = find_chromium()
    if not found:
        pytest.fail(
            f"No Chromium for the browser test: {INSTALL_HINT} (./scripts/test does this).",
            pytrace=False,
        )
    return found


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log in the test output."""


def example_app(config: dict[str, Any]) -> Flask:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from myflexmls import create_app
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return create_app(config)


@pytest.fixture
def live_app(
    sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str
) -> Iterator[tuple[Flask, str]]:
    """The example app, configured as the demo runs it, in a threaded werkzeug server."""
    config = sandbox_config(
        sandbox,
        DEBUG=True,
        SECRET_KEY="browser-test",
        SPARK_REDIS_URL=redis_server.url,
        SPARK_TOKEN_KEYS=[FERNET_KEY],
        SPARK_USER_AGENT="MyFlexmlsExample",
        SPARK_KEY_PREFIX=key_prefix,
        SESSION_KEY_PREFIX=key_prefix + "session:",
    )
    app = example_app(config)
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def issued_tokens(sandbox: SandboxServer, app: Flask) -> set[str]:
    """Every token the sandbox issued, plus the id_tokens in the app's encrypted records."""
    state = sandbox.state
    with state.lock:
        found = set(state.access_tokens) | set(state.refresh_tokens)
    store = app.extensions["spark.state"].tokens
    for key in store.scan_keys():
        tokens = store.load(key.split("{", 1)[1].rstrip("}"))
        if tokens is not None:
            found |= {t for t in (tokens.access_token, tokens.refresh_token) if t}
    return found


#: The phone sizes every page must fit (narrow Android, iPhone 12-15, Pro Max) and a desktop.
PHONE = {"width": 390, "height": 844}
PHONE_WIDTHS = (360, 390, 430)
DESKTOP = {"width": 1200, "height": 860}


def assert_fits(page: Any) -> None:
    """No sideways scrolling, and nothing spills out of a card (e.g. a long e-mail address)."""
    found = page.evaluate(
        """() => ({
            width: document.documentElement.scrollWidth,
            inner: innerWidth,
            spills: [...document.querySelectorAll('.card, main, dd')]
                .filter(el => el.scrollWidth > el.clientWidth + 1)
                .map(el => el.className || el.tagName),
        })"""
    )
    where = f"{page.url} at {found['inner']} px"
    assert found["width"] <= found["inner"], f"{where} scrolls sideways ({found['width']} px)"
    assert not found["spills"], f"{where}: content spills out of {found['spills']}"


def shoot(page: Any, name: str) -> None:
    """A screenshot cropped to the page's content: no blank area below a short page."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 200})
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        page.set_viewport_size(size)


class Guard:
    """Checks, page by page, that scripts see no token and no session cookie."""

    def __init__(self, page: Any, app_url: str) -> None:
        self.page = page
        self.app_url = app_url
        self.tokens: set[str] = set()
        self.pages: list[tuple[str, str]] = []

    def check(self) -> None:
        page = self.page
        assert_fits(page)
        html = page.content()
        self.pages.append((page.url, html))
        cookies = {c["name"]: c for c in page.context.cookies(self.app_url)}
        script_view = page.evaluate(
            """() => ({
                cookie: document.cookie,
                local: JSON.stringify(Object.entries(localStorage)),
                session: JSON.stringify(Object.entries(sessionStorage)),
            })"""
        )
        session_cookie = cookies.get("session")
        if session_cookie is not None:
            assert session_cookie["httpOnly"], "the session cookie must be HttpOnly"
            assert session_cookie["sameSite"] == "Lax"
            assert session_cookie["value"] not in script_view["cookie"]
        assert "session=" not in script_view["cookie"]
        for token in self.tokens:
            for where, text in (("HTML", html), *script_view.items()):
                assert token not in text, f"a token is readable in {where} of {page.url}"

    def recheck_all(self, tokens: set[str]) -> None:
        """Every page seen so far, against every token issued so far."""
        self.tokens = tokens
        for url, html in self.pages:
            for token in tokens:
                assert token not in html, f"a token is in the HTML of {url}"


def test_sign_in_search_and_sign_out_in_a_real_browser(
    live_app: tuple[Flask, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright

    executable = chromium_path()
    app, url = live_app
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    app_bodies: list[tuple[str, str]] = []
    missed: list[str] = []

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=DESKTOP,
            device_scale_factor=1,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(10_000)

            def keep_body(response: Any) -> None:
                # Read at once: a body is gone once the page navigates away.
                if response.url.startswith(url) and not 300 <= response.status < 400:
                    try:
                        app_bodies.append((response.url, response.text()))
                    except PlaywrightError:
                        missed.append(response.url)

            page.on("response", keep_body)
            guard = Guard(page, url)

            # Home, signed out.
            page.goto(url + "/")
            expect(page.get_by_role("heading", level=1)).to_contain_text("Flexmls")
            guard.check()
            shoot(page, "home")

            # "Sign in with Flexmls" → the sandbox's own login page; a first try is cancelled.
            page.locator("main").get_by_role("link", name="Sign in with Flexmls").click()
            page.wait_for_url(lambda u: u.startswith(sandbox.url))
            expect(page.get_by_role("heading", level=1)).to_have_text("Sign in with Flexmls")
            shoot(page, "signin")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("button", name="Deny").click()
            page.wait_for_url(lambda u: u.startswith(url + "/spark/callback"))
            expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in cancelled")
            guard.check()
            shoot(page, "cancelled")

            # Again, as another member, and allowed this time.
            page.get_by_role("link", name="Try signing in again").click()
            page.wait_for_url(lambda u: u.startswith(sandbox.url))
            page.get_by_label(MEMBER.name).check()
            page.get_by_role("button", name="Sign in").click()

            # Consent, then back to the app's dashboard.
            expect(page.get_by_text(f"Signed in as {MEMBER.name}")).to_be_visible()
            page.get_by_role("button", name="Allow").click()
            page.wait_for_url(url + "/dashboard")
            guard.tokens = issued_tokens(sandbox, app)
            assert guard.tokens, "the sandbox issued no tokens"
            expect(page.get_by_role("heading", level=1)).to_contain_text(MEMBER.name)
            account = page.locator("#account")
            expect(account).to_contain_text(MEMBER.name)
            expect(account).to_contain_text(MEMBER.office_name)
            expect(account).to_contain_text(MEMBER.email)
            guard.check()
            shoot(page, "dashboard")
            signed_in_sid = {c["name"]: c["value"] for c in context.cookies(url)}["session"]

            # Listing search through _filter, with pagination.
            page.get_by_role("navigation").get_by_role("link", name="Listings").click()
            page.get_by_label("City").fill("Fargo")
            page.get_by_label("Min price").fill("150000")
            page.get_by_label("Max price").fill("900000")
            page.get_by_role("button", name="Search").click()
            page.wait_for_url("**/listings?*city=Fargo*")
            count = page.locator("#result-count")
            expect(count).to_contain_text("page 1 of")
            cards = page.locator("a.listing")
            assert cards.count() > 1
            for text in cards.all_inner_texts():
                assert "Fargo" in text
            guard.check()
            shoot(page, "listings")
            page.get_by_role("link", name="Next").click()
            expect(count).to_contain_text("page 2 of")
            expect(page.get_by_label("City")).to_have_value("Fargo")
            guard.check()

            # A property (RESO Web API).
            cards.first.click()
            page.wait_for_url("**/property/*")
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            expect(page.locator(".price").first).to_contain_text("$")
            guard.check()
            shoot(page, "property")

            # Sign out: the form POST; back on the signed-out home page.
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(url + "/")
            expect(
                page.locator("main").get_by_role("link", name="Sign in with Flexmls")
            ).to_be_visible()
            guard.check()
            # The signed-in session id is dead: the cookie is gone or names a new session.
            assert {c["name"]: c["value"] for c in context.cookies(url)}.get("session") != (
                signed_in_sid
            )
            page.goto(url + "/dashboard")
            expect(page.get_by_role("heading", level=1)).to_have_text("Please sign in")
            guard.check()

            # Every app response (HTML, CSS, redirects' bodies) against every token issued.
            guard.recheck_all(issued_tokens(sandbox, app) | guard.tokens)
            assert len(app_bodies) >= 8, f"too few response bodies read (missed: {missed})"
            for response_url, body in app_bodies:
                for token in guard.tokens:
                    assert token not in body, f"a token is in the response of {response_url}"
        finally:
            context.close()

    counters = sandbox.counters()
    assert (counters["authorize_requests"], counters["consents_denied"]) == (2, 1)
    assert counters["logins"] == 1
    assert counters["revocations"] == 1
    for name in ("home", "signin", "cancelled", "dashboard", "listings", "property"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 5000


def fits_every_phone(page: Any) -> None:
    """The current page fits each phone width (then the viewport is the phone's again)."""
    for width in PHONE_WIDTHS:
        page.set_viewport_size({"width": width, "height": PHONE["height"]})
        assert_fits(page)
    page.set_viewport_size(PHONE)


def sign_in_in_browser(page: Any, url: str, sandbox: SandboxServer) -> None:
    """The browser flow on a phone: the signed-out pages and the sandbox's own pages fit."""
    page.goto(url + "/")
    fits_every_phone(page)
    page.goto(url + "/dashboard")  # "Please sign in"
    fits_every_phone(page)
    page.locator("main").get_by_role("link", name="Sign in with Flexmls").click()
    page.wait_for_url(lambda u: u.startswith(sandbox.url))
    fits_every_phone(page)
    page.get_by_label(MEMBER.name).check()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Allow").wait_for()
    fits_every_phone(page)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(url + "/dashboard")


def test_every_page_fits_a_phone_and_a_desktop(
    live_app: tuple[Flask, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Every page of My Flexmls and of the sandbox, at 360, 390 and 430 px and on a desktop:
    no sideways scrolling, the header collapses, cards wrap, nothing spills out of a card."""
    from playwright.sync_api import expect, sync_playwright

    executable = chromium_path()
    _, url = live_app
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(
                viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
            )
            page = context.new_page()
            page.set_default_timeout(10_000)
            sign_in_in_browser(page, url, sandbox)

            page.goto(url + "/listings?city=Fargo")
            listing = page.locator("a.listing").first.get_attribute("href")
            page.goto(url + "/saved-searches")
            saved = page.get_by_role("link", name="Show listings").first.get_attribute("href")
            assert listing
            assert saved
            pages = {
                "home": url + "/",
                "dashboard": url + "/dashboard",
                "listings": url + "/listings?city=Fargo",
                "any-status": url + "/listings?status=Any&page=2",
                "property": url + listing,
                "saved-searches": url + "/saved-searches",
                "saved-search": url + saved,
                "disconnect": url + "/disconnect",
                "no-results": url + "/listings?city=Atlantis",
                "not-found": url + "/nope",
                "bad-status": url + "/listings?status=Bogus",
                "logout-get": url + "/spark/logout",
                "sandbox-home": sandbox.url + "/",
                "sandbox-error": sandbox.url + "/openid/authorize?client_id=nope",
            }
            for name, address in pages.items():
                page.set_viewport_size(PHONE)
                page.goto(address)
                fits_every_phone(page)
                if name in ("dashboard", "listings", "property"):
                    page.screenshot(path=str(SCREENSHOTS / f"phone-{name}.png"))
                page.set_viewport_size(DESKTOP)
                assert_fits(page)

            # The header collapses: the navigation is a row of its own under the brand.
            page.set_viewport_size(PHONE)
            page.goto(url + "/dashboard")
            brand = page.locator(".brand").bounding_box()
            nav = page.get_by_role("navigation", name="Main").bounding_box()
            assert brand
            assert nav
            assert nav["y"] >= brand["y"] + brand["height"]
            assert nav["x"] + nav["width"] <= PHONE["width"]
            expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            context.close()
        finally:
            browser.close()
    for name in ("dashboard", "listings", "property"):
        assert (SCREENSHOTS / f"phone-{name}.png").stat().st_size > 5000
