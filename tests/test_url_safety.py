"""The user's token stays on the API host and under the API base path (issue 12, point 1).

Generated URL forms (schemes, userinfo, hosts, separators, escapes, dot segments, control and
whitespace characters) are given to the client as paths and sent back by a stand-in API as
``@odata.nextLink``. A capture server on loopback records every request that reaches it: it
must never see one. Legitimate paths and links must still reach the stand-in, under its base.
"""

from __future__ import annotations

import json
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

from .strategies import wire_chars, wire_text

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


def _attack(client: Any, send: Any, capture: Recorder, api: Recorder, base_path: str) -> None:
    """Send; the request is refused (UnsafeURL) or reaches the stand-in under ``base_path``."""
    before = len(api.seen)
    refusal = ""
    try:
        send()
    except UnsafeURL as refused:
        refusal = refused.message
    assert TOKEN not in refusal
    assert capture.seen == [], capture.seen
    for _method, path, auth in api.seen[before:]:
        assert path.startswith(base_path), path
        segments = path.split("?")[0].split("/")
        assert ".." not in segments, path
        assert "." not in segments, path
        assert auth == f"Bearer {TOKEN}"


ATTACKS = settings(
    max_examples=250,
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


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
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
)
def test_next_links_on_the_api_are_followed(client: SparkAPI, api: Recorder, link: str) -> None:
    api.next_link = link.format(base=f"http://{api.authority}")
    keys = [r["ListingKey"] for r in client.reso.paginate("Property", max_records=2)]
    assert keys[0] == "/Reso/OData/Property"
    assert keys[1].startswith("/Reso/OData/Property?$skip=1")
