"""The sandbox's Spark API and RESO Web API subsets: data, SparkQL / OData parsers, and views.

Parser and data tests are pure. View tests run against one real sandbox per module (loopback HTTP),
with a bearer token obtained through the authorization-code flow with PKCE.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree as ET

import pytest
import requests

from flask_spark.sandbox import listings_data as data
from flask_spark.sandbox import odata, sparkql
from flask_spark.sandbox.listings_data import QueryError
from flask_spark.sandbox.members import MEMBERS
from flask_spark.sandbox.server import SandboxServer
from flask_spark.sandbox.spark_api import reset_store

JANE, BOB = MEMBERS[0], MEMBERS[1]

# ------------------------------------------------------------------------------------------------
# Demo data
# ------------------------------------------------------------------------------------------------


def _digest() -> str:
    payload = [data.listings(), data.properties(), data.reso_members(), data.reso_offices()]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def test_listings_are_deterministic_across_processes() -> None:
    script = (
        "import hashlib, json\n"
        "from flask_spark.sandbox import listings_data as d\n"
        "p = [d.listings(), d.properties(), d.reso_members(), d.reso_offices()]\n"
        "print(hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == _digest()


def test_listings_shape() -> None:
    records = data.listings()
    assert 250 <= len(records) <= 350
    ids = [r["Id"] for r in records]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert {len(i) for i in ids} == {26}
    assert all(i.isdigit() for i in ids)
    cities = {
        (r["StandardFields"]["City"], r["StandardFields"]["StateOrProvince"]) for r in records
    }
    assert len(cities) == 6
    for record in records:
        sf = record["StandardFields"]
        assert record["ResourceUri"] == f"/v1/listings/{record['Id']}"
        assert sf["ListingKey"] == record["Id"]
        assert set(sf) == set(data.LISTING_FIELDS)
        assert isinstance(sf["ListPrice"], float)
        assert sf["MlsStatus"] in {"Active", "Pending", "Closed"}
        assert (sf["CloseDate"] is not None) == (sf["MlsStatus"] == "Closed")
        data.parse_timestamp(sf["ModificationTimestamp"])
    agents = {r["StandardFields"]["ListAgentId"] for r in records}
    assert {JANE.id, BOB.id} <= agents


def test_reso_views_agree_with_spark_records() -> None:
    for listing, prop in zip(data.listings(), data.properties(), strict=True):
        sf = listing["StandardFields"]
        assert set(prop) == set(data.PROPERTY_FIELDS)
        assert prop["ListingKey"] == sf["ListingKey"]
        assert prop["BedroomsTotal"] == sf["BedsTotal"]
        assert prop["StandardStatus"] == sf["MlsStatus"]
        assert prop["ListAgentKey"] == sf["ListAgentId"]
    members = {m["MemberKey"]: m for m in data.reso_members()}
    assert members[JANE.id]["MemberFullName"] == JANE.name
    assert members[JANE.id]["OfficeName"] == JANE.office_name
    offices = {o["OfficeKey"] for o in data.reso_offices()}
    assert {m["OfficeKey"] for m in members.values()} == offices
    assert {p["ListAgentKey"] for p in data.properties()} <= set(members)


def test_seeded_saved_searches_are_valid_sparkql() -> None:
    for member in MEMBERS:
        for search in data.Store().list("savedsearches", member.id):
            sparkql.parse_filter(search["Filter"], data.LISTING_FIELDS)


def test_store_copies_conflicts_and_reset() -> None:
    store = data.Store()
    first = store.list("contacts", JANE.id)
    first[0]["DisplayName"] = "mutated"
    assert store.list("contacts", JANE.id)[0]["DisplayName"] != "mutated"
    created = store.create("contacts", JANE.id, {"DisplayName": "A"})
    assert store.get("contacts", BOB.id, created["Id"]) is None
    stamp = created["ModificationTimestamp"]
    updated = store.update("contacts", JANE.id, created["Id"], {"DisplayName": "B"}, stamp)
    assert updated is not None
    assert updated["ModificationTimestamp"] > stamp
    with pytest.raises(data.ConflictError):
        store.update("contacts", JANE.id, created["Id"], {"DisplayName": "C"}, stamp)
    store.reset()
    assert store.get("contacts", JANE.id, created["Id"]) is None
    assert store.create("contacts", JANE.id, {})["Id"] == created["Id"]  # Ids restart


# ------------------------------------------------------------------------------------------------
# Shared value semantics and helpers
# ------------------------------------------------------------------------------------------------


def test_compare_semantics() -> None:
    assert data.compare("eq", "Fargo", data.coerce_literal("string", "FARGO", "string"), "string")
    assert data.compare("eq", None, None, "integer")
    assert data.compare("ne", None, 3.0, "integer")
    assert not data.compare("gt", None, 3.0, "integer")
    midnight = data.coerce_literal("date", date(2024, 6, 1), "datetime")
    assert data.compare("ge", "2024-06-01T00:00:00Z", midnight, "datetime")
    assert not data.compare("gt", "2024-05-31T23:59:59Z", midnight, "datetime")
    assert data.coerce_literal("integer", 3, "decimal") == 3.0
    with pytest.raises(data.LiteralTypeError):
        data.coerce_literal("decimal", 3.5, "integer")


def test_order_records_puts_nulls_last_both_ways() -> None:
    rows: list[dict[str, Any]] = [
        {"n": 2, "s": "b"},
        {"n": None, "s": "a"},
        {"n": 1, "s": "B"},
        {"n": 2, "s": "A"},
    ]
    schema: data.Schema = {"n": "integer", "s": "string"}
    ascending = data.order_records(rows, [("n", False), ("s", False)], schema, lambda r: r)
    assert [(r["n"], r["s"]) for r in ascending] == [(1, "B"), (2, "A"), (2, "b"), (None, "a")]
    descending = data.order_records(rows, [("n", True)], schema, lambda r: r)
    assert [r["n"] for r in descending] == [2, 2, 1, None]


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 10), ("", 10), ("1", 1), ("25", 25), (" 7 ", 7)]
)
def test_parse_bounded_int(raw: str | None, expected: int) -> None:
    assert data.parse_bounded_int(raw, "_limit", 10, 1, 25) == expected


@pytest.mark.parametrize("raw", ["0", "26", "-1", "ten", "1.5"])
def test_parse_bounded_int_rejects(raw: str) -> None:
    with pytest.raises(QueryError) as info:
        data.parse_bounded_int(raw, "_limit", 10, 1, 25)
    assert info.value.code == 1053


# ------------------------------------------------------------------------------------------------
# SparkQL
# ------------------------------------------------------------------------------------------------

HOUSE = {
    "City": "Fargo",
    "StateOrProvince": "ND",
    "ListPrice": 250000.0,
    "BedsTotal": 3,
    "BathsTotal": 2.5,
    "YearBuilt": None,
    "NewConstructionYN": False,
    "MlsStatus": "Active",
    "PublicRemarks": "It's lovely",
    "ListingContractDate": "2024-03-01",
    "ModificationTimestamp": "2024-06-01T12:00:00Z",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("City Eq 'Fargo'", True),
        ("City Eq 'fargo'", True),  # values compare case-insensitively
        ("City Ne 'Fargo'", False),
        ("City Eq 'Bismarck','Fargo'", True),
        ("City Ne 'Bismarck','Fargo'", False),
        ("ListPrice Eq 250000.0", True),
        ("ListPrice Eq 250000", True),  # integers widen to decimals
        ("ListPrice Gt 250000.0", False),
        ("ListPrice Ge 250000.0", True),
        ("ListPrice Lt 300000.0 And ListPrice Le 250000.0", True),
        ("ListPrice Bt 200000.0,250000.0", True),
        ("ListPrice Bt 250000.01,300000.0", False),
        ("BedsTotal Ge 3 And BathsTotal Gt 2.0", True),
        ("BathsTotal Eq -1.5", False),
        ("Not City Eq 'Fargo'", False),
        ("Not Not City Eq 'Fargo'", True),
        ("City Eq 'Fargo' Not MlsStatus Eq 'Closed'", True),  # "A Not B" == "A And Not B"
        ("City Eq 'Omaha' Or City Eq 'Fargo' And BedsTotal Eq 3", True),  # And binds tighter
        ("(City Eq 'Omaha' Or City Eq 'Fargo') And BedsTotal Eq 4", False),
        ("City Eq 'Omaha' Or (City Eq 'Fargo' And BedsTotal Eq 4)", False),
        ("YearBuilt Eq NULL", True),
        ("YearBuilt Ne null", False),
        ("YearBuilt Ne 1990", True),
        ("YearBuilt Gt 1900", False),
        ("NewConstructionYN Eq false", True),
        ("PublicRemarks Eq 'it\\'s LOVELY'", True),
        ("ListingContractDate Lt 2024-03-02", True),
        ("ModificationTimestamp Gt 2024-06-01", True),
        ("ModificationTimestamp Gt 2024-06-01T12:00:00Z", False),
        ("ModificationTimestamp Eq 2024-06-01T07:00:00-0500", True),
        ("ModificationTimestamp Eq 2024-06-01T14:00:00+02:00", True),
        ("ModificationTimestamp Lt 2024-06-01T12:00:00.5", True),
    ],
)
def test_sparkql_filters(text: str, expected: bool) -> None:
    predicate = sparkql.parse_filter(text, data.LISTING_FIELDS)
    assert predicate(HOUSE) is expected


@pytest.mark.parametrize(
    ("text", "code", "token", "status"),
    [
        ("Cty Eq 'Fargo'", 1040, "Cty", "Dropped"),
        ("City eq 'Fargo'", 1040, "eq", "Fatal"),
        ("City Eq 'Fargo' and BedsTotal Eq 3", 1040, "and", "Fatal"),
        ("City Eq", 1040, "", "Fatal"),
        ("City 'Fargo'", 1040, "'Fargo'", "Fatal"),
        ("(City Eq 'Fargo'", 1040, "", "Fatal"),
        ("City Eq 'Fargo')", 1040, ")", "Fatal"),
        ("City Eq 'Fargo' BedsTotal Eq 3", 1040, "BedsTotal", "Fatal"),
        ("City Eq 'unterminated", 1040, "'unterminate", "Fatal"),
        ("City Eq 'a' ; drop", 1040, "; drop", "Fatal"),
        ("ListPrice Eq 'cheap'", 2001, "'cheap'", "Dropped"),
        ("City Eq 12", 2001, "12", "Dropped"),
        ("BedsTotal Eq 3.5", 2001, "3.5", "Dropped"),
        ("ListingContractDate Eq 2024-01-01T00:00:00Z", 2001, "2024-01-01T00:00:00Z", "Dropped"),
        ("ListingContractDate Eq 2024-02-30", 2001, "2024-02-30", "Dropped"),
        ("ListPrice Gt NULL", 2001, "NULL", "Dropped"),
        ("ListPrice Bt 1.0", 2002, "1.0", "Dropped"),
        ("ListPrice Bt 1.0,2.0,3.0", 2002, "1.0,2.0,3.0", "Dropped"),
        ("ListPrice Gt 1.0,2.0", 2002, "1.0,2.0", "Dropped"),
    ],
)
def test_sparkql_errors(text: str, code: int, token: str, status: str) -> None:
    with pytest.raises(sparkql.SparkQLError) as info:
        sparkql.parse_filter(text, data.LISTING_FIELDS)
    error = info.value
    assert (error.code, error.status) == (code, status)
    assert error.token.startswith(token)
    assert error.details == [{"Token": error.token, "Status": status, "Message": error.message}]


def test_sparkql_limits() -> None:
    with pytest.raises(sparkql.SparkQLError) as info:
        sparkql.parse_filter(
            "City Eq '" + "x" * sparkql.MAX_FILTER_LENGTH + "'", {"City": "string"}
        )
    assert info.value.code == 1041
    many = " And ".join(["BedsTotal Ge 1"] * (sparkql.MAX_EXPRESSIONS + 1))
    with pytest.raises(sparkql.SparkQLError) as info:
        sparkql.parse_filter(many, data.LISTING_FIELDS)
    assert info.value.code == 1040
    values = ",".join(["'x'"] * (sparkql.MAX_VALUES + 1))
    with pytest.raises(sparkql.SparkQLError) as info:
        sparkql.parse_filter(f"City Eq {values}", data.LISTING_FIELDS)
    assert info.value.code == 2002


def test_sparkql_orderby_and_select() -> None:
    schema = data.LISTING_FIELDS
    assert sparkql.parse_orderby("-ListPrice,+BathsTotal,City", schema) == [
        ("ListPrice", True),
        ("BathsTotal", False),
        ("City", False),
    ]
    assert sparkql.parse_orderby(" BathsTotal", schema) == [("BathsTotal", False)]  # "+" → " "
    assert sparkql.parse_orderby(None, schema) == []
    assert sparkql.parse_select("City, ListPrice", schema) == ("City", "ListPrice")
    assert sparkql.parse_select("", schema) is None
    for bad in (
        lambda: sparkql.parse_orderby("-Nope", schema),
        lambda: sparkql.parse_select("X", schema),
    ):
        with pytest.raises(QueryError) as info:
            bad()
        assert info.value.code == 1053


# ------------------------------------------------------------------------------------------------
# OData
# ------------------------------------------------------------------------------------------------

PROPERTY = {
    "City": "Fargo",
    "ListPrice": 250000.0,
    "BedroomsTotal": 3,
    "YearBuilt": None,
    "NewConstructionYN": True,
    "StandardStatus": "Active",
    "PropertyType": "Residential",
    "PublicRemarks": "O'Brien's favourite",
    "ListingContractDate": "2024-03-01",
    "ModificationTimestamp": "2024-06-01T12:00:00Z",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, True),
        ("City eq 'Fargo'", True),
        ("City eq 'FARGO'", True),
        ("City ne 'Fargo'", False),
        ("ListPrice gt 200000 and ListPrice lt 2.6e5", True),
        ("ListPrice ge 250000.0 and ListPrice le 250000", True),
        ("City eq 'Omaha' or BedroomsTotal eq 3", True),
        ("City eq 'Omaha' or City eq 'Fargo' and BedroomsTotal eq 4", False),
        ("(City eq 'Omaha' or City eq 'Fargo') and not (BedroomsTotal eq 4)", True),
        ("not City eq 'Fargo'", False),
        ("YearBuilt eq null", True),
        ("YearBuilt ne null", False),
        ("NewConstructionYN eq true", True),
        ("PublicRemarks eq 'o''brien''s FAVOURITE'", True),
        ("PropertyType eq Odata.Models.PropertyType'Residential'", True),
        ("City in ('Omaha', 'fargo')", True),
        ("contains(PublicRemarks,'brien')", True),
        ("startswith(City,'far') and endswith(City,'GO')", True),
        ("contains(City,'x')", False),
        ("ListingContractDate ge 2024-03-01", True),
        ("ModificationTimestamp lt 2024-06-01T13:00:00+01:00", False),
        ("ModificationTimestamp gt 2024-06-01T11:59:59Z", True),
    ],
)
def test_odata_filters(text: str | None, expected: bool) -> None:
    assert odata.parse_filter(text, data.PROPERTY_FIELDS)(PROPERTY) is expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Cty eq 'Fargo'", 1040),
        ("City Eq 'Fargo'", 1040),
        ("City eq 'Fargo' AND ListPrice gt 1", 1040),
        ("City eq", 1040),
        ("(City eq 'Fargo'", 1040),
        ("City eq 'Fargo' ListPrice", 1040),
        ('City eq "Fargo"', 1040),
        ("ListPrice eq 'cheap'", 2001),
        ("BedroomsTotal eq 2.5", 2001),
        ("ListPrice gt null", 2001),
        ("contains(ListPrice,'1')", 2001),
        ("ListingContractDate eq 2024-13-01", 2001),
    ],
)
def test_odata_errors(text: str, code: int) -> None:
    with pytest.raises(odata.ODataQueryError) as info:
        odata.parse_filter(text, data.PROPERTY_FIELDS)
    assert info.value.code == code


def test_odata_orderby_and_select() -> None:
    schema = data.PROPERTY_FIELDS
    assert odata.parse_orderby("ListPrice desc, City asc,YearBuilt", schema) == [
        ("ListPrice", True),
        ("City", False),
        ("YearBuilt", False),
    ]
    assert odata.parse_select("*", schema) is None
    assert odata.parse_select("City,ListPrice", schema) == ("City", "ListPrice")
    for bad in ("ListPrice down", "Nope desc", "ListPrice desc extra"):
        with pytest.raises(QueryError):
            odata.parse_orderby(bad, schema)
    with pytest.raises(QueryError):
        odata.parse_select("City,Nope", schema)


# ------------------------------------------------------------------------------------------------
# Views, over HTTP against a real sandbox
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def _token_for(server: SandboxServer, member_id: str) -> str:
    """Sign ``member_id`` in through the authorization-code flow with PKCE; the access token."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    redirect_uri = "http://127.0.0.1:8765/callback"
    query = {
        "response_type": "code",
        "client_id": server.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": "xyz",
        "nonce": "n",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    answer = requests.post(
        f"{server.url}/openid/authorize",
        params=query,
        data={"member": member_id, "consent": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    tokens = requests.post(
        f"{server.url}/openid/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "code_verifier": verifier,
        },
        timeout=10,
    )
    assert tokens.status_code == 200, tokens.text
    access_token: str = tokens.json()["access_token"]
    return access_token


def _session(server: SandboxServer, member_id: str) -> requests.Session:
    session = requests.Session()
    session.headers.update(
        {
            "Authorization": f"Bearer {_token_for(server, member_id)}",
            "X-SparkApi-User-Agent": "test",
            "Accept": "application/json",
        }
    )
    return session


Call = Callable[..., requests.Response]


def _caller(server: SandboxServer, member_id: str) -> Iterator[Call]:
    """A ``call(method, path_or_url, **kwargs)`` signed in as the member."""
    with _session(server, member_id) as session:

        def call(method: str, target: str, **kwargs: Any) -> requests.Response:
            url = target if target.startswith("http") else server.url + target
            return session.request(method, url, timeout=10, **kwargs)

        yield call


@pytest.fixture(scope="module")
def jane(sandbox: SandboxServer) -> Iterator[Call]:
    yield from _caller(sandbox, JANE.id)


@pytest.fixture(scope="module")
def bob(sandbox: SandboxServer) -> Iterator[Call]:
    yield from _caller(sandbox, BOB.id)


@pytest.fixture
def fresh_store() -> Iterator[None]:
    reset_store()
    yield
    reset_store()


def _d(response: requests.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["D"]
    return body


def _error(response: requests.Response, status: int, code: int) -> dict[str, Any]:
    body = _d(response, status)
    assert body["Success"] is False
    assert body["Code"] == code
    return body


def test_listings_default_page(jane: Call) -> None:
    body = _d(jane("GET", "/v1/listings"))
    assert body["Success"] is True
    assert "Pagination" not in body
    ids = [r["Id"] for r in body["Results"]]
    assert ids == [r["Id"] for r in data.listings()[:10]]
    assert body["Results"][0] == data.listings()[0]


def test_listings_filter_select_order_paging(jane: Call) -> None:
    params = {
        "_filter": "City Eq 'Fargo' And MlsStatus Eq 'Active' And ListPrice Ge 100000.0",
        "_select": "ListPrice,City",
        "_orderby": "-ListPrice,+BathsTotal",
        "_limit": "5",
        "_page": "2",
        "_pagination": "1",
    }
    body = _d(jane("GET", "/v1/listings", params=params))
    expected = sorted(
        (
            r
            for r in data.listings()
            if r["StandardFields"]["City"] == "Fargo"
            and r["StandardFields"]["MlsStatus"] == "Active"
            and r["StandardFields"]["ListPrice"] >= 100000.0
        ),
        key=lambda r: -r["StandardFields"]["ListPrice"],
    )
    assert body["Pagination"] == {
        "TotalRows": len(expected),
        "PageSize": 5,
        "TotalPages": -(-len(expected) // 5),
        "CurrentPage": 2,
    }
    prices = [r["StandardFields"]["ListPrice"] for r in body["Results"]]
    assert prices == [r["StandardFields"]["ListPrice"] for r in expected[5:10]]
    assert all(set(r) == {"ResourceUri", "Id", "StandardFields"} for r in body["Results"])
    assert all(set(r["StandardFields"]) == {"ListPrice", "City"} for r in body["Results"])


def test_listings_pagination_count_and_skip(jane: Call) -> None:
    body = _d(jane("GET", "/v1/listings", params={"_pagination": "count"}))
    assert body["Results"] == []
    assert body["Pagination"]["TotalRows"] == len(data.listings())
    skipped = _d(jane("GET", "/v1/listings", params={"_skip": "3", "_limit": "2"}))
    assert [r["Id"] for r in skipped["Results"]] == [r["Id"] for r in data.listings()[3:5]]


def test_skip_answers_current_offset_instead_of_current_page(jane: Call) -> None:
    params = {"_skip": "7", "_limit": "5", "_pagination": "1"}
    body = _d(jane("GET", "/v1/listings", params=params))
    assert body["Pagination"] == {
        "TotalRows": len(data.listings()),
        "PageSize": 5,
        "TotalPages": -(-len(data.listings()) // 5),
        "CurrentOffset": 7,
    }
    paged = _d(jane("GET", "/v1/listings", params={"_page": "2", "_pagination": "1"}))
    assert paged["Pagination"]["CurrentPage"] == 2
    assert "CurrentOffset" not in paged["Pagination"]


def test_limit_zero_to_twentyfive_default_ten(jane: Call) -> None:
    assert len(_d(jane("GET", "/v1/listings"))["Results"]) == 10
    assert len(_d(jane("GET", "/v1/listings", params={"_limit": "25"}))["Results"]) == 25
    none = _d(jane("GET", "/v1/listings", params={"_limit": "0", "_pagination": "1"}))
    assert none["Results"] == []
    assert none["Pagination"]["TotalRows"] == len(data.listings())


def test_listings_skiptoken_walks_everything(jane: Call) -> None:
    seen: list[str] = []
    token: str | None = ""
    while token is not None:
        params = {"_skiptoken": token, "_limit": "25", "_select": "City"}
        body = _d(jane("GET", "/v1/listings", params=params))
        seen += [r["Id"] for r in body["Results"]]
        token = body["Pagination"]["SkipToken"]
    assert seen == [r["Id"] for r in data.listings()]


def test_skiptoken_with_orderby_and_bad_token(jane: Call) -> None:
    params = {"_skiptoken": "", "_limit": "3", "_orderby": "-ListPrice"}
    first = _d(jane("GET", "/v1/listings", params=params))
    params["_skiptoken"] = first["Pagination"]["SkipToken"]
    second = _d(jane("GET", "/v1/listings", params=params))
    prices = [r["StandardFields"]["ListPrice"] for r in first["Results"] + second["Results"]]
    assert prices == sorted(prices, reverse=True)
    params["_skiptoken"] = "bogus"
    _error(jane("GET", "/v1/listings", params=params), 400, 1053)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"_filter": "Cty Eq 'Fargo'"}, 1040),
        ({"_filter": "ListPrice Eq 'x'"}, 2001),
        ({"_filter": "ListPrice Bt 1.0"}, 2002),
        ({"_limit": "26"}, 1053),
        ({"_limit": "-1"}, 1053),
        ({"_page": "0"}, 1053),
        ({"_select": "Nope"}, 1053),
        ({"_orderby": "-Nope"}, 1053),
        ({"_pagination": "2"}, 1053),
    ],
)
def test_listings_bad_queries(jane: Call, params: dict[str, str], code: int) -> None:
    body = _error(jane("GET", "/v1/listings", params=params), 400, code)
    if "_filter" in params:
        assert body["SparkQLErrors"][0]["Status"] == "Dropped"
    else:
        assert "SparkQLErrors" not in body


def test_single_listing(jane: Call) -> None:
    record = data.listings()[42]
    body = _d(jane("GET", f"/v1/listings/{record['Id']}"))
    assert body["Results"] == [record]
    body = _d(jane("GET", f"/v1/listings/{record['Id']}", params={"_select": "City"}))
    assert body["Results"][0]["StandardFields"] == {"City": record["StandardFields"]["City"]}
    _error(jane("GET", "/v1/listings/00000000000000000000000000"), 404, 404)


def test_my_listings_are_the_members(jane: Call, bob: Call) -> None:
    for call, member in ((jane, JANE), (bob, BOB)):
        body = _d(call("GET", "/v1/my/listings", params={"_pagination": "1", "_limit": "25"}))
        mine = [r for r in data.listings() if r["StandardFields"]["ListAgentId"] == member.id]
        assert body["Pagination"]["TotalRows"] == len(mine) > 0
        assert {r["StandardFields"]["ListAgentId"] for r in body["Results"]} == {member.id}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_method_not_allowed(jane: Call, method: str) -> None:
    response = jane(method, "/v1/listings")
    _error(response, 405, 1018)
    assert response.headers["Allow"] == "GET, HEAD"


def test_api_requires_token(sandbox: SandboxServer) -> None:
    answer = requests.get(
        f"{sandbox.url}/v1/listings", headers={"X-SparkApi-User-Agent": "t"}, timeout=10
    )
    _error(answer, 401, 1000)


def test_contacts_crud(jane: Call, bob: Call, fresh_store: None) -> None:
    listed = _d(jane("GET", "/v1/contacts", params={"_pagination": "1"}))
    before = listed["Pagination"]["TotalRows"]
    assert before > 0
    payload = {"D": {"FirstName": "Ada", "LastName": "Lovelace", "Tags": ["Buyer"]}}
    created = _d(jane("POST", "/v1/contacts", json=payload))["Results"]
    assert len(created) == 1
    contact_id = created[0]["Id"]
    assert created[0]["ResourceUri"] == f"/v1/contacts/{contact_id}"

    record = _d(jane("GET", f"/v1/contacts/{contact_id}"))["Results"][0]
    assert record["DisplayName"] == "Ada Lovelace"
    assert record["Tags"] == ["Buyer"]
    assert record["OwnerId"] == JANE.id
    _error(bob("GET", f"/v1/contacts/{contact_id}"), 404, 404)  # members see only their own

    update = {
        "D": {
            "PrimaryEmail": "ada@example.com",
            "ModificationTimestamp": record["ModificationTimestamp"],
        }
    }
    updated = _d(jane("PUT", f"/v1/contacts/{contact_id}", json=update))["Results"][0]
    assert updated["PrimaryEmail"] == "ada@example.com"
    assert updated["DisplayName"] == "Ada Lovelace"
    _error(jane("PUT", f"/v1/contacts/{contact_id}", json=update), 409, 1055)  # stale timestamp

    found = _d(jane("GET", "/v1/contacts", params={"_filter": "PrimaryEmail Eq 'ADA@example.com'"}))
    assert [r["Id"] for r in found["Results"]] == [contact_id]

    _d(jane("DELETE", f"/v1/contacts/{contact_id}"))
    _error(jane("GET", f"/v1/contacts/{contact_id}"), 404, 404)
    _error(jane("DELETE", f"/v1/contacts/{contact_id}"), 404, 404)
    after = _d(jane("GET", "/v1/contacts", params={"_pagination": "1"}))
    assert after["Pagination"]["TotalRows"] == before


def test_contacts_bulk_form_and_bad_writes(jane: Call, fresh_store: None) -> None:
    bulk = {"D": {"Contacts": [{"DisplayName": "One"}, {"PrimaryEmail": "two@example.com"}]}}
    assert len(_d(jane("POST", "/v1/contacts", json=bulk))["Results"]) == 2
    _error(jane("POST", "/v1/contacts", data="DisplayName=x"), 400, 1035)
    _error(
        jane(
            "POST", "/v1/contacts", data="{not json", headers={"Content-Type": "application/json"}
        ),
        400,
        1035,
    )
    _error(jane("POST", "/v1/contacts", json={"DisplayName": "no envelope"}), 400, 1035)
    _error(jane("POST", "/v1/contacts", json={"D": {"Shoe": "size"}}), 400, 1053)
    _error(jane("POST", "/v1/contacts", json={"D": {"Tags": "Buyer"}}), 400, 1053)
    _error(jane("POST", "/v1/contacts", json={"D": {"Company": "Only"}}), 400, 1050)
    _error(jane("PATCH", "/v1/contacts"), 405, 1018)


def test_saved_searches(jane: Call, fresh_store: None) -> None:
    searches = _d(jane("GET", "/v1/savedsearches"))["Results"]
    assert searches
    assert all(set(s) >= {"Id", "Name", "Filter", "ModificationTimestamp"} for s in searches)
    body = {"D": {"Name": "Cheap", "Filter": "ListPrice Lt 100000.0"}}
    created = _d(jane("POST", "/v1/savedsearches", json=body))["Results"][0]
    fetched = _d(jane("GET", f"/v1/savedsearches/{created['Id']}"))["Results"][0]
    assert fetched["Filter"] == "ListPrice Lt 100000.0"
    bad = _error(
        jane("PUT", f"/v1/savedsearches/{created['Id']}", json={"D": {"Filter": "Nope Eq 1"}}),
        400,
        1040,
    )
    assert bad["SparkQLErrors"][0]["Token"] == "Nope"
    _error(jane("POST", "/v1/savedsearches", json={"D": {"Name": "No filter"}}), 400, 1050)


# -- RESO Web API ---------------------------------------------------------------------------------


def test_reso_property_collection(jane: Call, sandbox: SandboxServer) -> None:
    params = {
        "$filter": "City eq 'Omaha' and ListPrice gt 200000",
        "$select": "ListingKey,ListPrice",
        "$orderby": "ListPrice desc",
        "$top": "4",
        "$count": "true",
    }
    answer = jane("GET", "/Reso/OData/Property", params=params)
    assert answer.status_code == 200
    body = answer.json()
    expected = sorted(
        (p for p in data.properties() if p["City"] == "Omaha" and p["ListPrice"] > 200000),
        key=lambda p: -p["ListPrice"],
    )
    assert body["@odata.context"] == f"{sandbox.url}/Reso/OData/$metadata#Property"
    assert body["@odata.count"] == len(expected)
    assert body["value"] == [
        {"ListingKey": p["ListingKey"], "ListPrice": p["ListPrice"]} for p in expected[:4]
    ]
    link = urlsplit(body["@odata.nextLink"])
    assert f"{link.scheme}://{link.netloc}" == sandbox.url
    assert link.path == "/Reso/OData/Property"
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    token = query.pop("$skiptoken")
    assert query == params  # every parameter kept; the position is in the opaque token
    assert "+" in token  # read back as a space if a client rebuilds the link carelessly
    second = jane("GET", body["@odata.nextLink"]).json()
    assert [p["ListingKey"] for p in second["value"]] == [p["ListingKey"] for p in expected[4:8]]


def test_reso_skiptoken_must_be_followed_as_given(jane: Call) -> None:
    first = jane("GET", "/Reso/OData/Member", params={"$top": "3"}).json()
    link = urlsplit(first["@odata.nextLink"])
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    rebuilt = "&".join(f"{k}={v}" for k, v in query.items())  # decoded, not re-encoded
    answer = jane("GET", f"{link.scheme}://{link.netloc}{link.path}?{rebuilt}")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "1053"
    other_query = jane(
        "GET", "/Reso/OData/Member", params={"$top": "4", "$skiptoken": query["$skiptoken"]}
    )
    assert other_query.status_code == 400  # a token belongs to its query
    assert jane("GET", first["@odata.nextLink"]).status_code == 200


def test_reso_top_bounds(jane: Call) -> None:
    assert len(jane("GET", "/Reso/OData/Property").json()["value"]) == 10
    assert len(jane("GET", "/Reso/OData/Property", params={"$top": "25"}).json()["value"]) == 25
    assert len(jane("GET", "/Reso/OData/Property", params={"$top": "1"}).json()["value"]) == 1
    for top in ("0", "26", "1000"):
        answer = jane("GET", "/Reso/OData/Property", params={"$top": top})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "1053"


def test_reso_expand_media_and_open_house(jane: Call, sandbox: SandboxServer) -> None:
    params = {"$expand": "Media,OpenHouse", "$top": "25", "$select": "ListingKey"}
    body = jane("GET", "/Reso/OData/Property", params=params).json()
    listings = body["value"]
    assert all(set(p) == {"ListingKey", "Media", "OpenHouse"} for p in listings)
    assert all(len(p["Media"]) >= 2 for p in listings)
    assert any(p["OpenHouse"] for p in listings)
    photo = listings[0]["Media"][0]
    assert photo["ResourceRecordKey"] == listings[0]["ListingKey"]
    assert photo["MediaCategory"] == "Photo"
    assert photo["Order"] == 1
    assert photo["MediaURL"] == f"{sandbox.url}/photos/{listings[0]['ListingKey']}/1.svg"
    image = requests.get(photo["MediaURL"], timeout=10)  # no token: a browser can load it
    assert image.status_code == 200
    assert image.headers["Content-Type"].startswith("image/svg+xml")
    root = ET.fromstring(image.content)  # noqa: S314 - our own loopback server's answer
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert requests.get(photo["MediaURL"], timeout=10).content == image.content  # deterministic
    house = next(p for p in listings if p["OpenHouse"])["OpenHouse"][0]
    assert house["OpenHouseStartTime"] < house["OpenHouseEndTime"]
    key = listings[0]["ListingKey"]
    one = jane("GET", f"/Reso/OData/Property('{key}')", params={"$expand": "Media"}).json()
    assert one["Media"] == listings[0]["Media"]
    bad = jane("GET", "/Reso/OData/Member", params={"$expand": "Media"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "1053"


def test_reso_property_media_navigation(jane: Call, sandbox: SandboxServer) -> None:
    key = data.properties()[3]["ListingKey"]
    body = jane("GET", f"/Reso/OData/Property('{key}')/Media").json()
    assert body["@odata.context"].endswith(f"#Property('{key}')/Media")
    orders = [m["Order"] for m in body["value"]]
    assert orders == list(range(1, len(orders) + 1))
    assert all(m["ResourceRecordKey"] == key for m in body["value"])
    assert all(m["MediaURL"].startswith(sandbox.url + "/photos/") for m in body["value"])
    assert jane("GET", "/Reso/OData/Property('nope')/Media").status_code == 404
    media = jane("GET", "/Reso/OData/Media", params={"$filter": f"ResourceRecordKey eq '{key}'"})
    assert media.json()["value"] == body["value"]
    assert requests.get(f"{sandbox.url}/photos/{key}/99.svg", timeout=10).status_code == 404


@pytest.mark.parametrize("header", [False, True], ids=["bare", "www-authenticate"])
def test_reso_token_failures_come_in_odata_form(
    jane: Call, sandbox: SandboxServer, header: bool
) -> None:
    sandbox.faults(reso_www_authenticate=header)
    try:
        answer = requests.get(
            f"{sandbox.url}/Reso/OData/Property",
            headers={"X-SparkApi-User-Agent": "t", "Authorization": "Bearer not-a-token"},
            timeout=10,
        )
    finally:
        sandbox.faults(reso_www_authenticate=None)
    assert answer.status_code == 401
    assert answer.json() == {"error": {"code": "1000", "message": "Invalid session token"}}
    assert ("WWW-Authenticate" in answer.headers) is header


def test_reso_next_links_walk_everything(jane: Call) -> None:
    keys: list[str] = []
    answer = jane("GET", "/Reso/OData/Member", params={"$top": "5", "$select": "MemberKey"})
    while True:
        body = answer.json()
        keys += [m["MemberKey"] for m in body["value"]]
        if "@odata.nextLink" not in body:
            break
        answer = jane("GET", body["@odata.nextLink"])
    assert keys == [m["MemberKey"] for m in data.reso_members()]


def test_reso_single_entities(jane: Call, sandbox: SandboxServer) -> None:
    prop = data.properties()[7]
    body = jane("GET", f"/Reso/OData/Property('{prop['ListingKey']}')").json()
    assert body.pop("@odata.context") == f"{sandbox.url}/Reso/OData/$metadata#Property/$entity"
    assert body == prop
    office = data.reso_offices()[0]
    body = jane(
        "GET", f"/Reso/OData/Office('{office['OfficeKey']}')", params={"$select": "OfficeName"}
    ).json()
    assert body["OfficeName"] == office["OfficeName"]
    assert set(body) == {"@odata.context", "OfficeName"}
    member = jane("GET", f"/Reso/OData/Member('{JANE.id}')").json()
    assert member["MemberEmail"] == JANE.email
    missing = jane("GET", "/Reso/OData/Property('nope')")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "404", "message": "No Property with key 'nope'"}}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"$top": "26"}, "1053"),
        ({"$skip": "-1"}, "1053"),
        ({"$count": "yes"}, "1053"),
        ({"$select": "Nope"}, "1053"),
        ({"$orderby": "ListPrice sideways"}, "1053"),
        ({"$filter": "Nope eq 1"}, "1040"),
        ({"$filter": "City eq"}, "1040"),
        ({"$filter": "ListPrice eq 'x'"}, "2001"),
    ],
)
def test_reso_bad_queries(jane: Call, params: dict[str, str], code: str) -> None:
    answer = jane("GET", "/Reso/OData/Property", params=params)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code


def test_reso_last_page_and_method(jane: Call) -> None:
    total = len(data.reso_offices())
    body = jane("GET", "/Reso/OData/Office", params={"$skip": str(total - 1)}).json()
    assert len(body["value"]) == 1
    assert "@odata.nextLink" not in body
    assert "@odata.count" not in body
    answer = jane("POST", "/Reso/OData/Office")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "1018"


def test_reso_metadata_is_csdl(jane: Call) -> None:
    answer = jane("GET", "/Reso/OData/$metadata")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(answer.content)  # noqa: S314 - our own loopback server's answer
    edm = "{http://docs.oasis-open.org/odata/ns/edm}"
    types = {t.get("Name"): t for t in root.iter(f"{edm}EntityType")}
    assert set(types) == {"Property", "Member", "Office", "OpenHouse", "Media"}
    key = types["Property"].find(f"{edm}Key/{edm}PropertyRef")
    assert key is not None
    assert key.get("Name") == "ListingKey"
    fields = {p.get("Name"): p.get("Type") for p in types["Property"].iter(f"{edm}Property")}
    assert fields["ListPrice"] == "Edm.Decimal"
    assert fields["ModificationTimestamp"] == "Edm.DateTimeOffset"
    sets = {s.get("Name") for s in root.iter(f"{edm}EntitySet")}
    assert sets == {"Property", "Member", "Office", "OpenHouse", "Media"}
