"""A real browser through the example app: Playwright drives headless Chromium (Debian's package,
another system Chromium or Chrome, or Playwright's own download: see ``tests/chromium.py``).

Home → "Sign in with Flexmls" → the sandbox's own login and consent pages → dashboard → listing
search with pagination → a property → sign out. On every page, page scripts must not be able to
read a token or the session cookie. Every page of the app and of the sandbox, signed in and
out, and the error pages, must fit phones and a desktop and pass axe-core's WCAG 2.0/2.1/2.2 A
and AA rules with no violation (axe-core is the npm package ``./scripts/test`` installs in
``tests/.axe``). Screenshots land in a temporary folder, or with
``SPARK_SCREENSHOTS=docs/_static/screenshots`` in the folder the README and the docs show.
"""

from __future__ import annotations

import itertools
import os
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
from .example_app import create_example_app

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
#: axe-core from npm, as ./scripts/test installs it.
AXE = ROOT / "tests" / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

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


def error_pages(app: Flask) -> None:
    """``/_error/<status>/<code>``: the app's error page for a situation that a browser cannot
    easily bring about (the provider down at sign-out...), for axe; the real flows are tested
    in test_example_app.py."""
    from flask import render_template

    messages = {
        "revocation_pending": "You are signed out of this app. We could not reach Flexmls.",
        "csrf_failed": "This form has expired or did not come from this site; reload the page.",
        "store_logout": "You are signed out of this app.",
    }

    @app.get("/_error/<int:status>/<code>")
    def error_page(status: int, code: str) -> tuple[str, int]:
        message = messages.get(code, f"The Spark API answered {status} ({code}).")
        page = render_template(
            "spark/error.html", status=status, title="Request failed", message=message, code=code
        )
        return page, status


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
    app = create_example_app(config)
    error_pages(app)
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


def axe_violations(page: Any) -> list[str]:
    """axe-core's WCAG 2.0/2.1/2.2 A and AA violations on the current page, of any impact."""
    if not AXE.exists():
        pytest.fail(
            f"axe-core is not installed in {AXE.parent}: ./scripts/test installs it "
            "(npm install --prefix tests/.axe axe-core).",
            pytrace=False,
        )
    if not page.evaluate("() => 'axe' in window"):
        # Evaluated through the DevTools protocol, not as a <script> tag, which the pages'
        # Content-Security-Policy (script-src 'self') rightly refuses.
        page.evaluate(f"() => {{ {AXE.read_text()}\n }}")
    found: list[str] = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {
                runOnly: {type: "tag", values: tags}, resultTypes: ["violations"],
            });
            return result.violations.map(v => `${v.id} (${v.impact}): ` +
                v.nodes.slice(0, 4).map(n => n.target.join(" ")).join(" | "));
        }""",
        AXE_TAGS,
    )
    width = page.viewport_size["width"]
    return [f"{page.url} at {width} px: {violation}" for violation in found]


def shoot(page: Any, name: str) -> None:
    """A screenshot cropped to the page's content: no blank area below a short page."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 200})
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        page.set_viewport_size(size)


class Guard:
    """Checks, page by page, that scripts see no token and no session cookie (and that the
    page fits and passes axe)."""

    def __init__(self, page: Any, app_url: str) -> None:
        self.page = page
        self.app_url = app_url
        self.tokens: set[str] = set()
        self.pages: list[tuple[str, str]] = []

    def check(self) -> None:
        page = self.page
        assert_fits(page)
        found = axe_violations(page)
        assert not found, "axe found:\n" + "\n".join(found)
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
            page.set_default_timeout(60_000)  # a loaded -n 8 run

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


class Audit:
    """Every page, at the narrowest phone and on a desktop: it fits (at every phone width too)
    and axe finds nothing; all violations are reported together at the end."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.violations: list[str] = []
        self.pages = 0

    def check(self, name: str | None = None) -> None:
        page = self.page
        fits_every_phone(page)
        page.set_viewport_size({"width": PHONE_WIDTHS[0], "height": PHONE["height"]})
        self.violations += axe_violations(page)
        page.set_viewport_size(PHONE)
        if name:
            page.screenshot(path=str(SCREENSHOTS / f"phone-{name}.png"))
        page.set_viewport_size(DESKTOP)
        assert_fits(page)
        self.violations += axe_violations(page)
        page.set_viewport_size(PHONE)
        self.pages += 1

    def visit(self, address: str, name: str | None = None) -> None:
        self.page.goto(address)
        self.check(name)

    def assert_clean(self) -> None:
        assert not self.violations, "axe found:\n" + "\n".join(self.violations)


def sign_in_in_browser(
    page: Any, url: str, sandbox: SandboxServer, audit: Audit | None = None
) -> None:
    """The browser flow: the signed-out pages and the sandbox's own pages (audited if asked)."""
    if audit:
        audit.visit(url + "/")
        audit.visit(url + "/dashboard")  # "Please sign in"
        audit.visit(url + "/spark/callback?state=unknown&code=x")  # "Sign-in failed"
    page.goto(url + "/dashboard")
    page.locator("main").get_by_role("link", name="Sign in with Flexmls").click()
    page.wait_for_url(lambda u: u.startswith(sandbox.url))
    if audit:
        audit.check()
    page.get_by_label(MEMBER.name).check()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Allow").wait_for()
    if audit:
        audit.check()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(url + "/dashboard")


FOCUSED = """() => {
    const el = document.activeElement, box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return {text: el.getAttribute("aria-label") || el.innerText || el.id, id: el.id,
            inMain: !!el.closest("main"), x: box.x, y: box.y, width: box.width, height: box.height,
            outline: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth)};
}"""


def tab_through_header(page: Any) -> list[dict[str, Any]]:
    """The Tab stops from the top of the page to the first one in the main content."""
    page.locator("body").focus()
    stops: list[dict[str, Any]] = []
    while not stops or not stops[-1]["inMain"]:
        page.keyboard.press("Tab")
        stops.append(page.evaluate(FOCUSED))
        assert len(stops) < 15, f"no way into the main content: {stops}"
    return stops


def test_keyboard_skip_link_focus_order_and_photo_strip(
    live_app: tuple[Flask, str], sandbox: SandboxServer
) -> None:
    """A skip link first, a visible focus ring, Tab stops in the order they are drawn (on a
    desktop and a phone), and the property's photo strip operable by keys and by buttons."""
    from playwright.sync_api import expect, sync_playwright

    executable = chromium_path()
    _, url = live_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport=DESKTOP)
            page.set_default_timeout(60_000)  # a loaded -n 8 run
            sign_in_in_browser(page, url, sandbox)
            for viewport in (DESKTOP, PHONE):
                page.set_viewport_size(viewport)
                page.goto(url + "/dashboard")
                stops = tab_through_header(page)
                skip = stops[0]
                assert skip["text"] == "Skip to the main content"
                assert skip["y"] >= 0  # shown when focused
                for stop in stops:  # a ring of 2 px or more on every stop
                    assert stop["outline"] != "none", stop
                    assert stop["outlineWidth"] >= 2, stop
                header = stops[1:-1]
                assert [s["text"] for s in header][-3:] == [
                    "Dashboard",
                    "Listings",
                    "Saved searches",
                ]
                for before, after in itertools.pairwise(header):  # left to right, row by row
                    same_row = abs(after["y"] - before["y"]) < before["height"] / 2
                    assert (same_row and after["x"] > before["x"]) or (
                        after["y"] >= before["y"] + before["height"] / 2
                    ), (before, after)
                page.keyboard.press("Shift+Tab")
                for _ in range(len(stops) - 2):
                    page.keyboard.press("Shift+Tab")
                page.keyboard.press("Enter")  # the skip link moves the focus to the content
                assert page.evaluate(FOCUSED)["id"] == "main"

            page.set_viewport_size(DESKTOP)
            page.goto(url + "/listings?city=Fargo")
            page.locator("a.listing").first.click()
            page.wait_for_url("**/property/*")
            strip = page.locator("#photos")
            count = page.locator("#photo-count")
            total = page.locator("#photos img").count()
            assert total > 1
            expect(count).to_have_text(f"Photo 1 of {total}")
            expect(page.get_by_role("button", name="Previous photo")).to_be_disabled()
            page.get_by_role("button", name="Next photo").click()
            expect(count).to_have_text(f"Photo 2 of {total}")
            page.get_by_role("button", name="Previous photo").click()
            expect(count).to_have_text(f"Photo 1 of {total}")
            page.locator("body").focus()
            for _ in range(30):  # the strip itself is a Tab stop
                page.keyboard.press("Tab")
                if page.evaluate(FOCUSED)["id"] == "photos":
                    break
            assert page.evaluate(FOCUSED)["id"] == "photos"
            assert strip.get_attribute("aria-label", timeout=1000)
            page.keyboard.press("ArrowRight")
            expect(count).to_have_text(f"Photo 2 of {total}")
            page.keyboard.press("Tab")  # then its buttons, in the order drawn
            assert page.evaluate(FOCUSED)["text"] == "Previous photo"
        finally:
            browser.close()


def test_every_page_fits_and_passes_axe_on_phones_and_a_desktop(
    live_app: tuple[Flask, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Every page of My Flexmls and of the sandbox, signed out and in, and the error pages, at
    360, 390 and 430 px and on a desktop: no sideways scrolling, the header collapses, cards
    wrap, nothing spills out of a card, and axe-core's WCAG 2.2 AA rules find nothing."""
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
            page.set_default_timeout(60_000)  # a loaded -n 8 run
            audit = Audit(page)
            audit.visit(sandbox.url + "/")
            audit.visit(sandbox.url + "/openid/authorize?client_id=nope")
            for status, code in ((503, "provider_unavailable"), (200, "revocation_pending")):
                audit.visit(f"{url}/_error/{status}/{code}")  # signed out
            sign_in_in_browser(page, url, sandbox, audit)

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
                "commercial": url + "/listings?status=Any&page=9",
                "property": url + listing,
                "saved-searches": url + "/saved-searches",
                "saved-search": url + saved,
                "disconnect": url + "/disconnect",
                "no-results": url + "/listings?city=Atlantis",
                "refused": url + "/listings?min_price=abc&max_price=-5",
                "not-found": url + "/nope",
                "bad-status": url + "/listings?status=Bogus",
                "logout-get": url + "/spark/logout",
                "store-logout": url + "/spark/store-logout",
            }
            for name, address in pages.items():
                audit.visit(
                    address, name if name in ("dashboard", "listings", "property") else None
                )
            for status, code in ((502, "SparkAPIError"), (403, "1500"), (400, "csrf_failed")):
                audit.visit(f"{url}/_error/{status}/{code}")  # signed in
            sandbox.faults(rate_limit_next=20)
            audit.visit(url + "/saved-searches")  # "Flexmls is busy"
            expect(page.get_by_role("heading", level=1)).to_have_text("Flexmls is busy")
            sandbox.faults(rate_limit_next=None)
            sandbox.faults(force_error_next=1, force_error={"status": 401, "code": 1000})
            audit.visit(url + "/saved-searches")  # Flexmls refuses the token
            expect(page.get_by_role("heading", level=1)).to_contain_text("sign in again")

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

            # Signed out again: the home page with its message.
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(url + "/")
            audit.check()
            context.close()
        finally:
            browser.close()
    assert audit.pages >= 30
    audit.assert_clean()
    for name in ("dashboard", "listings", "property"):
        assert (SCREENSHOTS / f"phone-{name}.png").stat().st_size > 5000


def test_flask_sparks_own_pages_pass_axe(
    sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str
) -> None:
    """An app without templates of its own gets flask-spark's error page: it passes axe too."""
    from playwright.sync_api import sync_playwright

    app = Flask("bare")
    app.config.update(
        sandbox_config(
            sandbox,
            SECRET_KEY="bare",
            SPARK_REDIS_URL=redis_server.url,
            SPARK_TOKEN_KEYS=[FERNET_KEY],
            SPARK_USER_AGENT="BareApp",
            SPARK_KEY_PREFIX=key_prefix,
            SESSION_KEY_PREFIX=key_prefix + "session:",
        )
    )
    from flask_spark import SparkAuth

    SparkAuth(app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page(viewport=PHONE)
                audit = Audit(page)
                audit.visit(url + "/spark/callback?state=unknown&code=x")  # "Sign-in failed"
                assert page.get_by_role("heading", level=1).inner_text() == "Sign-in failed"
            finally:
                browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
    audit.assert_clean()
