"""The user's token stays on the API host and under the API base path (issue 12, point 1).

Generated URL forms (schemes, userinfo, hosts, separators, escapes, dot segments, control and
whitespace characters) are given to the client as paths and sent back by a stand-in API as
``@odata.nextLink``. A capture server on loopback records every request that reaches it: it
must never see one. Legitimate paths and links must still reach the stand-in, under its base.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_spark.core.api import ResoAPI, SparkAPI, StaticTokens
from flask_spark.core.errors import UnsafeURL
from flask_spark.core.http import pooled_session
from flask_spark.core.urls import MAX_URL, APIBase

from .helpers import node_id
from .strategies import examples, wire_chars, wire_text

TOKEN = "the-users-token"


class Recorder(ThreadingHTTPServer):
    """A loopback HTTP server that records (method, raw path, Authorization) of every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, str | None]] = []
        self.next_link: str | None = None
        self.lock = threading.Lock()

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def answer(self, path: str) -> dict[str, Any]:
        """The stand-in API's answer: a D envelope, or an OData page with the armed next link."""
        if path.startswith("/Reso/OData/"):
            with self.lock:
                link, self.next_link = self.next_link, None  # the first page only
            body: dict[str, Any] = {"value": [{"ListingKey": path}]}
            if link is not None:
                body["@odata.nextLink"] = link
            return body
        return {"D": {"Success": True, "Results": [{"Path": path}]}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def _serve(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        data = json.dumps(self.server.answer(self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, *args: Any) -> None:
        pass


def _serve(server: Recorder) -> Iterator[Recorder]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def capture() -> Iterator[Recorder]:
    """Where a stolen token would go: it must never receive a request."""
    yield from _serve(Recorder())


@pytest.fixture(scope="module")
def api() -> Iterator[Recorder]:
    """The stand-in Spark API / RESO Web API."""
    yield from _serve(Recorder())


@pytest.fixture(scope="module")
def client(api: Recorder) -> SparkAPI:
    common: dict[str, Any] = {
        "user_agent": "tests",
        "tokens": StaticTokens(TOKEN),
        "http": pooled_session(),
        "timeout": 30.0,
    }
    base = f"http://{api.authority}"
    reso = ResoAPI(base_url=base + "/Reso/OData/", **common)
    return SparkAPI(base_url=base + "/v1/", reso=reso, **common)


# -- generated URL forms -------------------------------------------------------------------


def url_forms(capture: Recorder, api: Recorder) -> st.SearchStrategy[str]:
    """References that try to reach the capture server, or to leave the API base path."""
    port = capture.server_address[1]
    hosts = st.sampled_from(
        [
            capture.authority,
            f"localhost:{port}",
            f"127.1:{port}",
            f"2130706433:{port}",
            f"0x7f.0.0.1:{port}",
            f"[::ffff:127.0.0.1]:{port}",
            f"{api.authority}@{capture.authority}",
            f"{capture.authority}#@{api.authority}",
            f"{capture.authority}\\@{api.authority}",
            api.authority,
        ]
    )
    schemes = st.sampled_from(
        [
            "http://",
            "HTTP://",
            "https://",
            "http:",
            "http:/",
            "http:\\\\",
            "//",
            "\\\\",
            "/\\",
            "\t//",
            " http://",
            "h\ttp://",
            "javascript:",
            "ftp://",
            "",
            "http:%2f%2f",
        ]
    )
    userinfo = st.sampled_from(["", "user@", "a:b@", f"{api.authority}@", "%40@", "@"])
    separators = st.sampled_from(
        [
            "/",
            "\\",
            "%2f",
            "%2F",
            "%5c",
            "%5C",
            "\t",
            "\n",
            "\r\n",
            " ",
            "\x00",
            "\x7f",
            "\u3002",
            "\uff0f",
            "\u2028",
            "?",
            "#",
            "@",
            ";",
            ":",
            "%00",
            "%0d%0a",
            "%25",
            "%252e",
            ".",
            "..",
            "%2e",
            "%2E%2e",
            ".%2e",
            "/../",
            "/./",
            "//",
            "..;/",
        ]
    )
    words = st.sampled_from(
        [
            "v1",
            "Reso",
            "OData",
            "listings",
            "my",
            "account",
            "Property('X')",
            "evil",
            "",
            "oauth2",
            "token",
            "x=1",
            "_filter=City Eq 'Fargo'",
        ]
    )
    noise = wire_text(min_size=1, max_size=4)
    crafted = st.builds(
        lambda *parts: "".join(parts),
        schemes,
        userinfo,
        hosts,
        separators,
        words,
        separators,
        words,
    )
    pieces = st.lists(st.one_of(separators, words, hosts, schemes, userinfo, noise), max_size=8)
    return st.one_of(crafted, pieces.map("".join))


#: Escapes that no path sent with the token may hold: encoded separators (``. / \\ ? #``),
#: ``%25`` (double encoding), encoded control characters.
ENCODED_SEPARATOR = re.compile(r"%(?:2[eEfF]|5[cC]|3[fF]|23|25|[01][0-9A-Fa-f]|7[fF])")


def assert_plain_path(sent: str, base_path: str) -> None:
    """What the path rules exist for: a path that every server and proxy reads the same way,
    under ``base_path``. No encoded separator, no double encoding, no empty, ``.`` or ``..``
    segment, no ``;`` (path parameters), ``@`` or ``\\``. (The query is the API's business.)"""
    path = sent.split("?", 1)[0]
    assert path.startswith(base_path), sent
    assert not ENCODED_SEPARATOR.search(path), sent
    assert not set(";@\\") & set(path), sent
    segments = path[len(base_path) :].split("/")
    assert "" not in segments[:-1], sent  # a//b; a trailing slash is fine
    assert not {".", ".."} & set(segments), sent


def assert_on_the_api(sent: str, base_path: str) -> None:
    """The weaker guarantee of the re-parse alone: under ``base_path`` as the server reads it."""
    path = sent.split("?", 1)[0]
    assert path.startswith(base_path), sent
    assert not {".", ".."} & set(path.split("/")), sent


def _attack(
    client: Any,
    send: Any,
    capture: Recorder,
    api: Recorder,
    base_path: str,
    oracle: Any = assert_plain_path,
) -> None:
    """Send; the request is refused (UnsafeURL) or reaches the stand-in with a plain path."""
    before = len(api.seen)
    refusal = ""
    try:
        send()
    except UnsafeURL as refused:
        refusal = refused.message
    assert TOKEN not in refusal
    assert capture.seen == [], capture.seen
    for _method, path, auth in api.seen[before:]:
        oracle(path, base_path)
        assert auth == f"Bearer {TOKEN}"


ATTACKS = settings(
    max_examples=examples(250),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@ATTACKS
@given(data=st.data())
def test_no_generated_path_sends_the_token_elsewhere(
    data: st.DataObject, client: SparkAPI, capture: Recorder, api: Recorder
) -> None:
    ref = data.draw(url_forms(capture, api), label="path")
    _attack(client, lambda: client.get(ref), capture, api, "/v1/")
    _attack(client, lambda: client.reso.get(ref), capture, api, "/Reso/OData/")


@ATTACKS
@given(data=st.data())
def test_no_generated_next_link_sends_the_token_elsewhere(
    data: st.DataObject, client: SparkAPI, capture: Recorder, api: Recorder
) -> None:
    link = data.draw(url_forms(capture, api), label="@odata.nextLink")
    api.next_link = link
    first = len(api.seen)

    def walk() -> None:
        list(client.reso.paginate("Property", max_records=2))

    try:
        _attack(client, walk, capture, api, "/Reso/OData/")
    finally:
        api.next_link = None
    assert api.seen[first][1] == "/Reso/OData/Property"  # the first page was asked for


def test_a_refused_next_link_is_the_apis_fault(client: SparkAPI, api: Recorder) -> None:
    api.next_link = "http://elsewhere.example/Reso/OData/Property?$skip=1"
    with pytest.raises(UnsafeURL) as caught:
        list(client.reso.paginate("Property", max_records=5))
    assert caught.value.status == 502
    assert "not on the configured API host" in caught.value.message
    with pytest.raises(UnsafeURL) as caught:
        client.get("../Reso/OData/Property")
    assert caught.value.status == 400


# -- what must keep working ----------------------------------------------------------------

segment = st.from_regex(r"[A-Za-z0-9_~\-]{1,24}", fullmatch=True)
quoted_key = segment.map(lambda key: f"Property('{key}')")
query = wire_text(
    wire_chars(exclude_characters="#\\", exclude_categories=["C", "Z"]) | st.just(" "),
    max_size=40,
)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    segments=st.lists(segment | quoted_key, min_size=1, max_size=4),
    leading_slash=st.booleans(),
    filter_=st.none() | query,
)
def test_legitimate_paths_reach_the_api_under_its_base(
    client: SparkAPI,
    api: Recorder,
    capture: Recorder,
    segments: list[str],
    leading_slash: bool,
    filter_: str | None,
) -> None:
    path = ("/" if leading_slash else "") + "/".join(segments)
    ref = path + ("" if filter_ is None else f"?_filter={filter_}")
    answer = client.get(ref)
    sent = answer.first()["Path"]
    assert sent.split("?")[0] == "/v1/" + "/".join(segments)
    assert capture.seen == []


@pytest.mark.parametrize(
    "ref",
    [
        "listings",
        "listings/20060412165917817933000000",
        "my/account",
        "/my/account",
        "Property('X')",
        "listings?_filter=City Eq 'Fargo'",
        "listings?_filter=City%20Eq%20'Fargo'&_limit=5",
    ],
    ids=node_id,
)
def test_documented_paths_still_work(client: SparkAPI, api: Recorder, ref: str) -> None:
    path = client.get(ref).first()["Path"]
    assert path.startswith("/v1/" + ref.lstrip("/").split("?")[0])
    if "?" in ref:
        assert "_filter=City%20Eq%20'Fargo'" in path


@pytest.mark.parametrize(
    "link",
    [
        "Property?$skip=1",
        "/Reso/OData/Property?$skip=1",
        "{base}/Reso/OData/Property?$skip=1&$filter=City%20eq%20'Fargo'",
    ],
    ids=node_id,
)
def test_next_links_on_the_api_are_followed(client: SparkAPI, api: Recorder, link: str) -> None:
    api.next_link = link.format(base=f"http://{api.authority}")
    keys = [r["ListingKey"] for r in client.reso.paginate("Property", max_records=2)]
    assert keys[0] == "/Reso/OData/Property"
    assert keys[1].startswith("/Reso/OData/Property?$skip=1")


# -- the path rules, one reference at a time (issue 23) ------------------------------------

#: References that no server may receive with the token, each for its own reason.
ESCAPES = {
    "encoded slashes": "..%2F..%2Fadmin",
    "encoded slash, lower case": "a%2fb",
    "encoded backslash": "a%5Cb",
    "encoded backslash, lower case": "a%5cb",
    "double encoding": "a%252e%252e/x",
    "encoded percent": "a%25",
    "encoded dots": "%2e%2e/admin",
    "encoded dots, upper case": "a/%2E%2E/b",
    "encoded question mark": "a%3Fb",
    "encoded hash": "a%23b",
    "encoded NUL": "a%00b",
    "encoded CR LF": "a%0d%0ab",
    "encoded DEL": "a%7Fb",
    "empty segment": "a//b",
    "empty segments": "a///b",
    "path parameter": "a;b",
    "path parameter escape": "..;/admin",
    "at sign": "a@b",
    "dot dot": "../admin",
    "dot dot inside": "a/../../admin",
    "dot": "./a",
    "trailing dot dot": "a/..",
    "non-ASCII": "caf\u00e9",
    "space": "a b",
}
ESCAPE_IDS = [node_id(name) for name in ESCAPES]
#: What the re-parse alone refuses: references that its parsers read outside the base path.
LEAVES_THE_BASE = ["../admin", "a/../../admin", "..", "../../Reso/OData/Property"]


def _refused(send: Any, status: int) -> str:
    with pytest.raises(UnsafeURL) as refused:
        send()
    assert refused.value.status == status
    assert TOKEN not in refused.value.message
    return refused.value.message


@pytest.fixture(params=["path rules", "re-parse"], ids=node_id)
def one_layer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """One of the two layers that decide a URL, with the other one switched off.

    The only place the tests name the inside of ``core/urls.py``: ``raising=True`` makes a
    renamed layer fail here, loudly, rather than leave a layer untested.
    """
    if request.param == "path rules":
        monkeypatch.setattr(APIBase, "_verified", lambda self, url, status: url, raising=True)
    else:
        monkeypatch.setattr(APIBase, "_check_path", lambda self, path, status: None, raising=True)
    return str(request.param)


@pytest.mark.parametrize("ref", list(ESCAPES.values()), ids=ESCAPE_IDS)
def test_a_path_escape_is_refused_in_every_form(
    client: SparkAPI, api: Recorder, capture: Recorder, ref: str
) -> None:
    """As a path, a rooted path, an absolute URL on the API, and as a next link (the API's
    fault then, 502): refused before any request carries the token."""
    before = len(api.seen)
    absolute = f"http://{api.authority}/v1/{ref}"
    for form in (ref, "/" + ref, absolute):
        _refused(lambda form=form: client.get(form), 400)
    assert api.seen[before:] == []
    for link in ("/Reso/OData/" + ref, f"http://{api.authority}/Reso/OData/{ref}"):
        api.next_link = link
        _refused(lambda: list(client.reso.paginate("Property", max_records=2)), 502)
    assert [path for _, path, _ in api.seen[before:]] == ["/Reso/OData/Property"] * 2
    assert capture.seen == []


@pytest.mark.parametrize("ref", list(ESCAPES.values()), ids=ESCAPE_IDS)
def test_the_path_rules_alone_refuse_every_escape(
    client: SparkAPI, api: Recorder, monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    monkeypatch.setattr(APIBase, "_verified", lambda self, url, status: url, raising=True)
    before = len(api.seen)
    _refused(lambda: client.get(ref), 400)
    _refused(lambda: client.get(f"http://{api.authority}/v1/{ref}"), 400)
    assert api.seen[before:] == []


@pytest.mark.parametrize("ref", LEAVES_THE_BASE, ids=node_id)
def test_the_reparse_alone_refuses_what_leaves_the_base(
    client: SparkAPI, api: Recorder, monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    monkeypatch.setattr(APIBase, "_check_path", lambda self, path, status: None, raising=True)
    before = len(api.seen)
    message = _refused(lambda: client.get(ref), 400)
    assert "read as another host or path" in message
    assert api.seen[before:] == []


@ATTACKS
@given(data=st.data())
def test_each_layer_alone_keeps_generated_paths_on_the_api(
    data: st.DataObject, client: SparkAPI, capture: Recorder, api: Recorder, one_layer: str
) -> None:
    """Either layer alone still keeps the token on the API: the path rules with the full
    oracle, the re-parse (which sees hosts and dot segments, not escapes) with its own."""
    oracle = assert_plain_path if one_layer == "path rules" else assert_on_the_api
    ref = data.draw(url_forms(capture, api), label="path")
    _attack(client, lambda: client.get(ref), capture, api, "/v1/", oracle)
    _attack(client, lambda: client.reso.get(ref), capture, api, "/Reso/OData/", oracle)


# -- the base URL and the origin -------------------------------------------------------------


def test_a_base_url_without_a_trailing_slash_gets_one(api: Recorder) -> None:
    """``/v1`` + ``listings`` is ``/v1/listings``, not ``/v1listings``."""
    base = f"http://{api.authority}/v1"
    client = SparkAPI(
        base_url=base, tokens=StaticTokens(TOKEN), user_agent="t", http=pooled_session(), timeout=5
    )
    assert client.get("listings").first()["Path"] == "/v1/listings"
    assert APIBase(base).resolve("my/account") == base + "/my/account"
    assert APIBase(base + "/").resolve("my/account") == base + "/my/account"


@pytest.mark.parametrize(
    ("base", "ref", "expected"),
    [
        ("http://127.0.0.1/v1/", "http://127.0.0.1:80/v1/x", "http://127.0.0.1/v1/x"),
        ("https://api.example/v1/", "https://api.example:443/v1/x", "https://api.example/v1/x"),
        ("https://api.example/v1/", "HTTPS://API.example/v1/x", "https://api.example/v1/x"),
        ("http://[::1]:8080/v1/", "http://[::1]:8080/v1/x", "http://[::1]:8080/v1/x"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("http://127.0.0.1:8080/v1/", "x?a=%2F&b=@;", "http://127.0.0.1:8080/v1/x?a=%2F&b=@;"),
        ("http://127.0.0.1:8080/v1/", "x/", "http://127.0.0.1:8080/v1/x/"),
    ],
    ids=node_id,
)
def test_the_same_origin_written_another_way_is_accepted(
    base: str, ref: str, expected: str
) -> None:
    """Default ports, case and IPv6 brackets do not make the API's own origin another one;
    the query is the API's business, a trailing slash is not an empty segment."""
    assert APIBase(base).resolve(ref) == expected


REFUSALS = {
    "other port": ("http://127.0.0.1:8081/v1/x", "it is not on the configured API host"),
    "other scheme": ("https://127.0.0.1:8080/v1/x", "it is not on the configured API host"),
    "other host name": ("http://localhost:8080/v1/x", "it is not on the configured API host"),
    "look-alike host": ("http://X127.0.0.1:8080/v1/x", "it is not on the configured API host"),
    "two ports": ("http://127.0.0.1:8080:8080/v1/x", "its host part is not a plain host[:port]"),
    "userinfo": ("http://u@127.0.0.1:8080/v1/x", "its host part is not a plain host[:port]"),
    "other path": ("http://127.0.0.1:8080/v2/x", "its path is not under /v1/"),
    "origin only": ("http://127.0.0.1:8080", "its path is not under /v1/"),
    "scheme-relative": ("//127.0.0.1:8080/v1/x", "it names another host (scheme-relative)"),
    "fragment": ("x#frag", "it holds a backslash or a fragment"),
    "backslash": ("x\\y", "it holds a backslash or a fragment"),
    "tab": ("x\ty", "it holds control characters or whitespace"),
    "escape": ("a%2fb", "its path holds characters or escapes that parsers read differently"),
    "semicolon": ("a;b", "its path holds characters or escapes that parsers read differently"),
    "dot segment": ("a/../b", "its path has dot segments"),
    "empty segment": ("a//b", "its path has empty segments"),
    "too long": ("x" * (MAX_URL + 1), "it is too long"),
    "not a string": (b"x", "it is not a string"),
}


def assert_refusal(base: APIBase, ref: Any, reason: str) -> None:
    """Refused with ``reason``: status 400 for the app's path, 502 for the API's link."""
    for link, status in ((False, 400), (True, 502)):
        with pytest.raises(UnsafeURL) as refused:
            base.resolve(ref, link=link)
        assert refused.value.reason == reason
        assert refused.value.status == status


@pytest.mark.parametrize(
    ("ref", "reason"), list(REFUSALS.values()), ids=[node_id(name) for name in REFUSALS]
)
def test_each_refusal_says_why(ref: Any, reason: str) -> None:
    assert_refusal(APIBase("http://127.0.0.1:8080/v1/"), ref, reason)


def test_a_base_at_the_root_checks_every_segment() -> None:
    base = APIBase("http://127.0.0.1:8080/")
    assert base.url == "http://127.0.0.1:8080/"
    assert base.resolve("x") == "http://127.0.0.1:8080/x"
    assert_refusal(base, "..", "its path has dot segments")
    assert_refusal(base, "./x", "its path has dot segments")


def test_a_rooted_path_is_under_the_base_and_a_rooted_link_under_the_origin() -> None:
    base = APIBase("http://127.0.0.1:8080/v1/")
    assert base.resolve("/listings") == "http://127.0.0.1:8080/v1/listings"
    assert base.resolve("/v1/listings", link=True) == "http://127.0.0.1:8080/v1/listings"
    with pytest.raises(UnsafeURL) as refused:
        base.resolve("/listings", link=True)
    assert refused.value.status == 502


def test_the_longest_reference_is_accepted() -> None:
    longest = "x" * MAX_URL
    assert APIBase("http://127.0.0.1:8080/v1/").resolve(longest).endswith("/v1/" + longest)


@pytest.mark.parametrize(
    ("base", "reason"),
    [
        # requests would send the credentials
        ("http://user:secret@127.0.0.1:8080/v1/", "it is read as another host or path"),
        # requests sends the IDNA form, another host name
        ("http://b\u00fccher.example/v1/", "it is read as another host or path"),
        # requests before 2.32 prepares it (quoting the space), later releases refuse it
        ("http://exa mple.example/v1/", "it cannot be parsed|it is read as another host or path"),
    ],
    ids=["userinfo", "idna", "space"],
)
def test_a_base_that_requests_reads_differently_sends_nothing(base: str, reason: str) -> None:
    """The re-parse compares what requests will really send with the configuration."""
    for link, status in ((False, 400), (True, 502)):
        with pytest.raises(UnsafeURL) as refused:
            APIBase(base).resolve("listings", link=link)
        assert refused.value.reason in reason.split("|")
        assert refused.value.status == status
