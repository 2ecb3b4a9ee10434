"""The sandbox's data model: deterministic listings, members, offices, contacts, saved searches.

Everything read-only is generated once from a seeded ``random.Random`` and fixed timestamps, so two
sandbox processes (or two test runs) serve byte-identical listings. Contacts and saved searches are
writable: they live in a per-process, lock-protected :class:`Store` that :func:`reset` empties.

The module also holds what the Spark API and RESO Web API views share: field schemas, the value
semantics both filter languages use (:func:`coerce_literal`, :func:`compare`), and collection
helpers (:func:`order_records`, :func:`select_fields`, :func:`page_of`).
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Generic, Literal, TypeVar

from .members import MEMBERS, Member

# --------------------------------------------------------------------------------------------------
# Schemas and value semantics shared by SparkQL and OData filters
# --------------------------------------------------------------------------------------------------

FieldType = Literal["string", "integer", "decimal", "boolean", "date", "datetime"]
"""The type of a filterable / sortable field."""

LiteralKind = Literal["string", "integer", "decimal", "boolean", "null", "date", "datetime"]
"""The kind of a literal as a filter language's lexer recognised it."""

Schema = Mapping[str, FieldType]
"""Field name → type: what a resource can be filtered, selected and ordered on."""

Record = dict[str, Any]

LISTING_FIELDS: dict[str, FieldType] = {
    "ListingKey": "string",
    "ListingId": "string",
    "ListPrice": "decimal",
    "ClosePrice": "decimal",
    "City": "string",
    "StateOrProvince": "string",
    "PostalCode": "string",
    "CountyOrParish": "string",
    "StreetNumber": "string",
    "StreetName": "string",
    "UnparsedAddress": "string",
    "Latitude": "decimal",
    "Longitude": "decimal",
    "BedsTotal": "integer",
    "BathsFull": "integer",
    "BathsHalf": "integer",
    "BathsTotal": "decimal",
    "BuildingAreaTotal": "integer",
    "LotSizeAcres": "decimal",
    "YearBuilt": "integer",
    "NewConstructionYN": "boolean",
    "PropertyType": "string",
    "PropertyTypeLabel": "string",
    "PropertySubType": "string",
    "MlsStatus": "string",
    "ListAgentId": "string",
    "ListAgentName": "string",
    "ListOfficeId": "string",
    "ListOfficeName": "string",
    "PublicRemarks": "string",
    "ListingContractDate": "date",
    "CloseDate": "date",
    "ModificationTimestamp": "datetime",
}
"""Spark API ``StandardFields`` of a listing (``_filter``, ``_select``, ``_orderby``)."""

PROPERTY_FIELDS: dict[str, FieldType] = {
    "ListingKey": "string",
    "ListingId": "string",
    "ListPrice": "decimal",
    "ClosePrice": "decimal",
    "City": "string",
    "StateOrProvince": "string",
    "PostalCode": "string",
    "CountyOrParish": "string",
    "StreetNumber": "string",
    "StreetName": "string",
    "UnparsedAddress": "string",
    "Latitude": "decimal",
    "Longitude": "decimal",
    "BedroomsTotal": "integer",
    "BathroomsFull": "integer",
    "BathroomsHalf": "integer",
    "BathroomsTotalInteger": "integer",
    "LivingArea": "decimal",
    "LotSizeAcres": "decimal",
    "YearBuilt": "integer",
    "NewConstructionYN": "boolean",
    "PropertyType": "string",
    "PropertySubType": "string",
    "StandardStatus": "string",
    "MlsStatus": "string",
    "ListAgentKey": "string",
    "ListAgentFullName": "string",
    "ListOfficeKey": "string",
    "ListOfficeName": "string",
    "PublicRemarks": "string",
    "ListingContractDate": "date",
    "CloseDate": "date",
    "ModificationTimestamp": "datetime",
}
"""RESO Data Dictionary view of a listing (the ``Property`` resource)."""

MEMBER_FIELDS: dict[str, FieldType] = {
    "MemberKey": "string",
    "MemberMlsId": "string",
    "MemberFirstName": "string",
    "MemberLastName": "string",
    "MemberFullName": "string",
    "MemberEmail": "string",
    "MemberPreferredPhone": "string",
    "MemberNationalAssociationId": "string",
    "MemberStateLicense": "string",
    "MemberAOR": "string",
    "MemberType": "string",
    "MemberStatus": "string",
    "OfficeKey": "string",
    "OfficeMlsId": "string",
    "OfficeName": "string",
    "ModificationTimestamp": "datetime",
}
"""RESO ``Member`` resource."""

OFFICE_FIELDS: dict[str, FieldType] = {
    "OfficeKey": "string",
    "OfficeMlsId": "string",
    "OfficeName": "string",
    "OfficeCity": "string",
    "OfficeStateOrProvince": "string",
    "OfficePhone": "string",
    "OfficeStatus": "string",
    "ModificationTimestamp": "datetime",
}
"""RESO ``Office`` resource."""

CONTACT_FIELDS: dict[str, FieldType] = {
    "Id": "string",
    "DisplayName": "string",
    "FirstName": "string",
    "LastName": "string",
    "Company": "string",
    "PrimaryEmail": "string",
    "PrimaryPhoneNumber": "string",
    "HomeStreetAddress": "string",
    "HomeLocality": "string",
    "HomeRegion": "string",
    "HomePostalCode": "string",
    "ModificationTimestamp": "datetime",
}
"""Filterable / sortable fields of a Spark contact (``Tags`` is a list and only writable)."""

SAVED_SEARCH_FIELDS: dict[str, FieldType] = {
    "Id": "string",
    "Name": "string",
    "Filter": "string",
    "Description": "string",
    "ModificationTimestamp": "datetime",
}
"""Filterable / sortable fields of a Spark saved search."""


class LiteralTypeError(ValueError):
    """A filter literal whose kind the field's type does not accept (e.g. ``ListPrice Eq 'x'``)."""


_ACCEPTS: dict[FieldType, frozenset[str]] = {
    "string": frozenset({"string"}),
    "integer": frozenset({"integer"}),
    "decimal": frozenset({"integer", "decimal"}),
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date", "datetime"}),
}


def coerce_literal(kind: LiteralKind, value: Any, ftype: FieldType) -> Any:
    """Turn a lexed literal into the comparable value for a field of ``ftype``.

    ``null`` is accepted for every type (the caller restricts it to equality); integers widen to
    decimals; a date compared with a datetime field means midnight UTC. Anything else mismatched
    raises :class:`LiteralTypeError`.
    """
    if kind == "null":
        return None
    if kind not in _ACCEPTS[ftype]:
        raise LiteralTypeError(f"a {kind} value cannot be compared with a {ftype} field")
    if ftype == "datetime" and isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return normalize(value, ftype)


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; ``Z`` and numeric offsets are honoured, naive means UTC."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def normalize(value: Any, ftype: FieldType) -> Any:
    """Map a stored or literal value onto the domain filters and sorting compare in.

    Strings compare case-insensitively (``casefold``), timestamps as aware datetimes, dates as
    dates, numbers as floats. ``None`` stays ``None``.
    """
    if value is None:
        return None
    if ftype == "string":
        return str(value).casefold()
    if ftype == "datetime":
        return value if isinstance(value, datetime) else parse_timestamp(str(value))
    if ftype == "date":
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if ftype in ("integer", "decimal"):
        return float(value)
    return bool(value)


ComparisonOp = Literal["eq", "ne", "gt", "ge", "lt", "le"]


def compare(op: ComparisonOp, actual: Any, expected: Any, ftype: FieldType) -> bool:
    """Evaluate ``actual <op> expected`` with the sandbox's filter semantics.

    ``expected`` must come from :func:`coerce_literal`. A null field equals only ``null`` and is
    "not equal" to every other value; ordering comparisons with null are false.
    """
    left = normalize(actual, ftype)
    if op == "eq":
        return bool(left == expected)
    if op == "ne":
        return bool(left != expected)
    if left is None or expected is None:
        return False
    if op == "gt":
        return bool(left > expected)
    if op == "ge":
        return bool(left >= expected)
    if op == "lt":
        return bool(left < expected)
    return bool(left <= expected)


Predicate = Callable[[Mapping[str, Any]], bool]
"""A compiled filter: takes a record's flat field mapping, says whether it matches."""


# --------------------------------------------------------------------------------------------------
# Collection helpers shared by the Spark and RESO views
# --------------------------------------------------------------------------------------------------

T = TypeVar("T")

OrderBy = Sequence[tuple[str, bool]]
"""``[(field, descending), ...]``, most significant first."""


class QueryError(ValueError):
    """A query parameter the sandbox cannot honour; each API renders it as its own error body.

    ``code`` is the Spark error code (1040 filter syntax, 1041 filter too long, 1053 invalid
    parameter, 2001/2002 filter values); ``details`` is the ``SparkQLErrors`` list when relevant.
    """

    def __init__(
        self, code: int, message: str, *, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def check_fields(names: Iterable[str], known: Collection[str], param: str) -> tuple[str, ...]:
    """Validate a ``_select`` / ``$select`` / order field list against known names (code 1053)."""
    result = tuple(names)
    unknown = [name for name in result if name not in known]
    if unknown:
        raise QueryError(1053, f"{param}: unknown field(s) {', '.join(unknown)}")
    return result


def order_records(
    records: Iterable[T],
    order: OrderBy,
    schema: Schema,
    fields_of: Callable[[T], Mapping[str, Any]],
) -> list[T]:
    """Stable multi-key sort; strings case-insensitive, nulls last in either direction."""
    result = list(records)
    for name, descending in reversed(order):
        ftype = schema[name]

        def value(record: T, name: str = name, ftype: FieldType = ftype) -> Any:
            return normalize(fields_of(record).get(name), ftype)

        present = [record for record in result if value(record) is not None]
        missing = [record for record in result if value(record) is None]
        present.sort(key=value, reverse=descending)
        result = present + missing
    return result


def filter_and_order(
    records: Iterable[T],
    predicate: Predicate,
    order: OrderBy,
    schema: Schema,
    fields_of: Callable[[T], Mapping[str, Any]],
) -> list[T]:
    """The records whose fields match ``predicate``, sorted by ``order`` (else kept as given)."""
    matched = [record for record in records if predicate(fields_of(record))]
    return order_records(matched, order, schema, fields_of) if order else matched


def select_fields(fields: Mapping[str, Any], names: Sequence[str] | None) -> dict[str, Any]:
    """Keep only ``names`` (in the record's own field order); ``None`` keeps everything."""
    if names is None:
        return dict(fields)
    wanted = set(names)
    return {key: value for key, value in fields.items() if key in wanted}


def parse_bounded_int(
    raw: str | None, param: str, default: int, low: int, high: int | None = None
) -> int:
    """Parse an integer query parameter within ``[low, high]`` (absent → default); else 1053."""
    if raw is None or raw.strip() == "":
        return default
    try:
        number = int(raw.strip())
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise QueryError(1053, f"{param} must be an integer {bound}")
    return number


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a filtered, ordered collection plus what paging metadata needs."""

    records: list[T]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        """Whether records remain after this page."""
        return self.offset + len(self.records) < self.total


def page_of(items: Sequence[T], offset: int, limit: int) -> Page[T]:
    """Slice ``items`` to ``[offset, offset + limit)``."""
    return Page(list(items[offset : offset + limit]), len(items), offset, limit)


def ceil_div(numerator: int, denominator: int) -> int:
    """``ceil(numerator / denominator)`` for page counts (0 rows → 0 pages)."""
    return math.ceil(numerator / denominator) if denominator else 0


# --------------------------------------------------------------------------------------------------
# Deterministic demo data
# --------------------------------------------------------------------------------------------------

SEED = 20240601
"""Seed of the listings generator: change it and every Id and price changes."""

_EPOCH = datetime(2024, 1, 2, 8, 0, 0, tzinfo=UTC)
_DATA_TIMESTAMP = "2024-01-01T00:00:00Z"


@dataclass(frozen=True)
class _City:
    name: str
    state: str
    county: str
    zips: tuple[str, ...]
    lat: float
    lon: float
    median: int


_CITIES: tuple[_City, ...] = (
    _City("Fargo", "ND", "Cass", ("58102", "58103", "58104"), 46.8772, -96.7898, 285_000),
    _City("Bismarck", "ND", "Burleigh", ("58501", "58503", "58504"), 46.8083, -100.7837, 300_000),
    _City(
        "Minneapolis", "MN", "Hennepin", ("55405", "55408", "55413", "55418"), 44.9778, -93.2650,
        345_000,
    ),
    _City(
        "Sioux Falls", "SD", "Minnehaha", ("57103", "57105", "57106", "57108"), 43.5446, -96.7311,
        310_000,
    ),
    _City("Des Moines", "IA", "Polk", ("50310", "50312", "50315", "50317"), 41.5868, -93.6250,
        235_000),
    _City("Omaha", "NE", "Douglas", ("68104", "68106", "68114", "68132"), 41.2565, -95.9345,
        265_000),
)  # fmt: skip

LISTINGS_PER_CITY = 50

#: Spark property type code → (Spark label, RESO PropertyType, sub types, price factor).
_PROPERTY_TYPES: dict[str, tuple[str, str, tuple[str, ...], float]] = {
    "A": (
        "Residential",
        "Residential",
        ("Single Family Residence", "Townhouse", "Condominium"),
        1.0,
    ),
    "B": ("Multi-Family", "Residential Income", ("Duplex", "Triplex", "Quadruplex"), 1.6),
    "C": ("Land", "Land", ("Residential Lot", "Unimproved Land"), 0.35),
    "D": ("Commercial", "Commercial Sale", ("Office", "Retail", "Warehouse"), 2.4),
}

_STREETS = (
    "Elm", "Oak", "Maple", "Cedar", "Prairie", "River", "Lake", "Park", "Main", "Broadway",
    "University", "Washington", "Lincoln", "Sunset", "Meadow", "Willow", "Birch", "Aspen",
)  # fmt: skip
_SUFFIXES = ("St", "Ave", "Dr", "Ln", "Ct", "Blvd", "Way", "Pl")
_ADJECTIVES = ("Charming", "Spacious", "Updated", "Bright", "Well-kept", "Move-in ready", "Classic")
_FEATURES = (
    "a fenced backyard",
    "an open floor plan",
    "a remodeled kitchen",
    "hardwood floors throughout",
    "a finished basement",
    "a two-stall garage",
    "mature trees",
    "new windows and roof",
    "walking distance to parks and schools",
)
_LAND_FEATURES = ("parks and trails", "schools and shopping", "the interstate", "the river")

_FIRST_NAMES = (
    "Avery", "Jordan", "Morgan", "Riley", "Casey", "Taylor", "Quinn", "Harper", "Rowan", "Emerson",
    "Sam", "Drew", "Jamie", "Reese", "Skyler", "Logan", "Parker", "Hayden",
)  # fmt: skip
_LAST_NAMES = (
    "Olson", "Johnson", "Larson", "Peterson", "Hansen", "Lindqvist", "Schmidt", "Novak", "Garcia",
    "Okafor", "Berg", "Thompson", "Rivera", "Nguyen", "Fischer", "Anderson", "Kowalski", "Reyes",
)  # fmt: skip

#: One synthetic brokerage per city: name, phone prefix.
_BROKERAGES: tuple[tuple[str, str], ...] = (
    ("Red River Realty", "701"),
    ("Capital City Homes", "701"),
    ("North Loop Realty", "612"),
    ("Falls Park Properties", "605"),
    ("Raccoon River Realty", "515"),
    ("Gateway Realty Group", "402"),
)


def _iso(moment: datetime) -> str:
    """Spark's timestamp spelling: UTC, second precision, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spark_id(moment: datetime, rng: random.Random) -> str:
    """A 26-digit Spark style Id: timestamp, 6 random digits, 6 zeros."""
    return f"{moment:%Y%m%d%H%M%S}{rng.randrange(1_000_000):06d}000000"


@dataclass(frozen=True)
class Agent:
    """A listing agent: a demo member or a synthetic agent of a city's brokerage."""

    key: str
    mls_id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    member_type: str
    office_key: str
    office_mls_id: str
    office_name: str
    office_city: str
    office_state: str
    office_phone: str
    nrds_id: str = ""
    state_license: str = ""
    aor: str = ""

    @property
    def full_name(self) -> str:
        """First and last name."""
        return f"{self.first_name} {self.last_name}"


def _member_agent(member: Member) -> Agent:
    return Agent(
        key=member.id,
        mls_id=member.mls_id,
        first_name=member.first_name,
        last_name=member.last_name,
        email=member.email,
        phone=member.phone,
        member_type=member.member_type,
        office_key=member.office_key,
        office_mls_id=member.office_mls_id,
        office_name=member.office_name,
        office_city=member.city,
        office_state=member.state,
        office_phone=f"{member.phone[:3]}-555-0100",
        nrds_id=member.nrds_id,
        state_license=member.state_license,
        aor=member.aor,
    )


@cache
def agents() -> tuple[Agent, ...]:
    """Every agent: the demo members first, then two synthetic agents per city brokerage."""
    rng = random.Random(f"{SEED}:agents")
    result = [_member_agent(member) for member in MEMBERS]
    for index, (city, (office_name, area)) in enumerate(zip(_CITIES, _BROKERAGES, strict=True)):
        office_moment = datetime(2001 + index, 3, 1 + index, 9, 30, tzinfo=UTC)
        office_key = _spark_id(office_moment, rng)
        office_mls_id = "".join(word[0] for word in office_name.split()).upper() + f"{index + 10}"
        for slot in range(2):
            first = _FIRST_NAMES[(index * 3 + slot * 7) % len(_FIRST_NAMES)]
            last = _LAST_NAMES[(index * 5 + slot * 11) % len(_LAST_NAMES)]
            moment = datetime(2010 + index, 1 + slot * 5, 10 + slot, 12, 0, tzinfo=UTC)
            result.append(
                Agent(
                    key=_spark_id(moment, rng),
                    mls_id=f"{first[0]}{last[0]}{5000 + index * 10 + slot}",
                    first_name=first,
                    last_name=last,
                    email=f"{first.lower()}.{last.lower()}@example.com",
                    phone=f"{area}-555-{200 + index * 10 + slot:04d}",
                    member_type="Agent" if slot else "Broker",
                    office_key=office_key,
                    office_mls_id=office_mls_id,
                    office_name=office_name,
                    office_city=city.name,
                    office_state=city.state,
                    office_phone=f"{area}-555-{100 + index:04d}",
                    nrds_id=f"{rng.randrange(100_000_000, 999_999_999)}",
                    state_license=f"{city.state}-{rng.randrange(1_000_000, 9_999_999)}",
                    aor=f"{city.name} Area REALTORS",
                )
            )
    return tuple(result)


def _listing_agent(rng: random.Random, city_index: int) -> Agent:
    """Pick a listing agent: demo agents and brokers list many Fargo homes and a few elsewhere."""
    everyone = agents()
    demo_listers = [
        agent for agent in everyone[: len(MEMBERS)] if agent.member_type in ("Agent", "Broker")
    ]
    first = len(MEMBERS) + city_index * 2
    if demo_listers and rng.random() < (0.45 if city_index == 0 else 0.08):
        return rng.choice(demo_listers)
    return rng.choice(everyone[first : first + 2])


def _round_price(value: float) -> float:
    """Round a price the way listings are priced: to the thousand, minus 100 (249,900.0)."""
    return float(max(round(value, -3) - 100, 9_900))


def _make_listing(rng: random.Random, city_index: int, number: int) -> Record:
    city = _CITIES[city_index]
    code = rng.choices(("A", "B", "C", "D"), weights=(70, 10, 10, 10))[0]
    label, _, subtypes, factor = _PROPERTY_TYPES[code]
    subtype = rng.choice(subtypes)
    status = rng.choices(("Active", "Pending", "Closed"), weights=(60, 15, 25))[0]
    contract = _EPOCH + timedelta(days=rng.randrange(0, 300), minutes=rng.randrange(0, 600))
    modified = contract + timedelta(days=rng.randrange(0, 20), seconds=rng.randrange(0, 86_400))
    price = _round_price(city.median * factor * rng.uniform(0.55, 1.9))
    close_date: str | None = None
    close_price: float | None = None
    if status == "Closed":
        closed = contract + timedelta(days=rng.randrange(25, 80))
        close_date = closed.date().isoformat()
        close_price = _round_price(price * rng.uniform(0.94, 1.03)) + 100
        modified = closed + timedelta(hours=rng.randrange(1, 48))

    beds: int | None = None
    full: int | None = None
    half: int | None = None
    area: int | None = None
    year: int | None = None
    if code == "A":
        beds = rng.randint(1, 5)
        full, half = rng.randint(1, max(1, beds - 1)), rng.randint(0, 1)
        area = 600 + beds * 330 + rng.randrange(-150, 600, 10)
    elif code == "B":
        beds = rng.randint(4, 8)
        full, half = rng.randint(2, 4), rng.randint(0, 2)
        area = rng.randrange(1_800, 4_200, 10)
    elif code == "D":
        full, half = rng.randint(1, 2), rng.randint(0, 1)
        area = rng.randrange(1_500, 12_000, 50)
    if code != "C":
        year = rng.choice(
            (rng.randint(1900, 1969), rng.randint(1970, 2022), rng.randint(2023, 2024))
        )
    acres = round(rng.uniform(0.3, 40.0) if code == "C" else rng.uniform(0.08, 0.75), 2)

    street_number = str(rng.randrange(100, 9_900))
    street_name = f"{rng.choice(_STREETS)} {rng.choice(_SUFFIXES)}"
    postal = rng.choice(city.zips)
    agent = _listing_agent(rng, city_index)
    listing_id = _spark_id(contract, rng)
    if code == "C":
        remarks = (
            f"{acres} acre {subtype.lower()} in {city.name}, ready for your plans. "
            f"Utilities nearby; close to {rng.choice(_LAND_FEATURES)}."
        )
    elif code == "D":
        remarks = (
            f"{subtype} space of {area:,} sq ft on {street_name} in {city.name}. "
            "Ample parking and high visibility."
        )
    else:
        remarks = (
            f"{rng.choice(_ADJECTIVES)} {beds}-bedroom {subtype.lower()} in {city.name} with "
            f"{rng.choice(_FEATURES)} and {rng.choice(_FEATURES)}."
        )
    baths_total = None if full is None or half is None else float(full + 0.5 * half)
    fields: Record = {
        "ListingKey": listing_id,
        "ListingId": f"{24 + city_index}{number:04d}",
        "ListPrice": price,
        "ClosePrice": close_price,
        "City": city.name,
        "StateOrProvince": city.state,
        "PostalCode": postal,
        "CountyOrParish": city.county,
        "StreetNumber": street_number,
        "StreetName": street_name,
        "UnparsedAddress": f"{street_number} {street_name}, {city.name}, {city.state} {postal}",
        "Latitude": round(city.lat + rng.uniform(-0.06, 0.06), 6),
        "Longitude": round(city.lon + rng.uniform(-0.08, 0.08), 6),
        "BedsTotal": beds,
        "BathsFull": full,
        "BathsHalf": half,
        "BathsTotal": baths_total,
        "BuildingAreaTotal": area,
        "LotSizeAcres": acres,
        "YearBuilt": year,
        "NewConstructionYN": year is not None and year >= 2023,
        "PropertyType": code,
        "PropertyTypeLabel": label,
        "PropertySubType": subtype,
        "MlsStatus": status,
        "ListAgentId": agent.key,
        "ListAgentName": agent.full_name,
        "ListOfficeId": agent.office_key,
        "ListOfficeName": agent.office_name,
        "PublicRemarks": remarks,
        "ListingContractDate": contract.date().isoformat(),
        "CloseDate": close_date,
        "ModificationTimestamp": _iso(modified),
    }
    return {"ResourceUri": f"/v1/listings/{listing_id}", "Id": listing_id, "StandardFields": fields}


@cache
def listings() -> tuple[Record, ...]:
    """Every demo listing as a Spark API record, ordered by Id (ListingKey). Do not mutate."""
    rng = random.Random(SEED)
    seen: set[str] = set()
    records: list[Record] = []
    for city_index in range(len(_CITIES)):
        for number in range(1, LISTINGS_PER_CITY + 1):
            record = _make_listing(rng, city_index, number)
            while record["Id"] in seen:  # astronomically rare; keeps Ids unique regardless
                record = _make_listing(rng, city_index, number)
            seen.add(record["Id"])
            records.append(record)
    records.sort(key=lambda record: str(record["Id"]))
    return tuple(records)


@cache
def _listings_by_id() -> dict[str, Record]:
    return {record["Id"]: record for record in listings()}


def get_listing(listing_id: str) -> Record | None:
    """The Spark listing record with that Id, or ``None``."""
    return _listings_by_id().get(listing_id)


def _property_of(record: Record) -> Record:
    """The RESO ``Property`` view of a Spark listing record."""
    sf = record["StandardFields"]
    full, half = sf["BathsFull"], sf["BathsHalf"]
    return {
        "ListingKey": sf["ListingKey"],
        "ListingId": sf["ListingId"],
        "ListPrice": sf["ListPrice"],
        "ClosePrice": sf["ClosePrice"],
        "City": sf["City"],
        "StateOrProvince": sf["StateOrProvince"],
        "PostalCode": sf["PostalCode"],
        "CountyOrParish": sf["CountyOrParish"],
        "StreetNumber": sf["StreetNumber"],
        "StreetName": sf["StreetName"],
        "UnparsedAddress": sf["UnparsedAddress"],
        "Latitude": sf["Latitude"],
        "Longitude": sf["Longitude"],
        "BedroomsTotal": sf["BedsTotal"],
        "BathroomsFull": full,
        "BathroomsHalf": half,
        "BathroomsTotalInteger": None if full is None else full + (half or 0),
        "LivingArea": None if sf["BuildingAreaTotal"] is None else float(sf["BuildingAreaTotal"]),
        "LotSizeAcres": sf["LotSizeAcres"],
        "YearBuilt": sf["YearBuilt"],
        "NewConstructionYN": sf["NewConstructionYN"],
        "PropertyType": _PROPERTY_TYPES[sf["PropertyType"]][1],
        "PropertySubType": sf["PropertySubType"],
        "StandardStatus": sf["MlsStatus"],
        "MlsStatus": sf["MlsStatus"],
        "ListAgentKey": sf["ListAgentId"],
        "ListAgentFullName": sf["ListAgentName"],
        "ListOfficeKey": sf["ListOfficeId"],
        "ListOfficeName": sf["ListOfficeName"],
        "PublicRemarks": sf["PublicRemarks"],
        "ListingContractDate": sf["ListingContractDate"],
        "CloseDate": sf["CloseDate"],
        "ModificationTimestamp": sf["ModificationTimestamp"],
    }


@cache
def properties() -> tuple[Record, ...]:
    """Every listing as a RESO ``Property`` record, ordered by ListingKey. Do not mutate."""
    return tuple(_property_of(record) for record in listings())


@cache
def reso_members() -> tuple[Record, ...]:
    """Every agent as a RESO ``Member`` record (demo members first). Do not mutate."""
    return tuple(
        {
            "MemberKey": agent.key,
            "MemberMlsId": agent.mls_id,
            "MemberFirstName": agent.first_name,
            "MemberLastName": agent.last_name,
            "MemberFullName": agent.full_name,
            "MemberEmail": agent.email,
            "MemberPreferredPhone": agent.phone,
            "MemberNationalAssociationId": agent.nrds_id,
            "MemberStateLicense": agent.state_license,
            "MemberAOR": agent.aor,
            "MemberType": agent.member_type,
            "MemberStatus": "Active",
            "OfficeKey": agent.office_key,
            "OfficeMlsId": agent.office_mls_id,
            "OfficeName": agent.office_name,
            "ModificationTimestamp": _DATA_TIMESTAMP,
        }
        for agent in agents()
    )


@cache
def reso_offices() -> tuple[Record, ...]:
    """Every office an agent belongs to, as RESO ``Office`` records. Do not mutate."""
    offices: dict[str, Record] = {}
    for agent in agents():
        offices.setdefault(
            agent.office_key,
            {
                "OfficeKey": agent.office_key,
                "OfficeMlsId": agent.office_mls_id,
                "OfficeName": agent.office_name,
                "OfficeCity": agent.office_city,
                "OfficeStateOrProvince": agent.office_state,
                "OfficePhone": agent.office_phone,
                "OfficeStatus": "Active",
                "ModificationTimestamp": _DATA_TIMESTAMP,
            },
        )
    return tuple(offices.values())


# --------------------------------------------------------------------------------------------------
# Writable per-member collections: contacts and saved searches
# --------------------------------------------------------------------------------------------------

Kind = Literal["contacts", "savedsearches"]

CONTACT_WRITABLE: dict[str, type] = {
    "DisplayName": str,
    "FirstName": str,
    "LastName": str,
    "Company": str,
    "PrimaryEmail": str,
    "PrimaryPhoneNumber": str,
    "HomeStreetAddress": str,
    "HomeLocality": str,
    "HomeRegion": str,
    "HomePostalCode": str,
    "Tags": list,
}
"""Contact fields a client may write, and their JSON types (``Tags`` is a list of strings)."""

SAVED_SEARCH_WRITABLE: dict[str, type] = {"Name": str, "Filter": str, "Description": str}
"""Saved search fields a client may write."""

_SEARCH_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    (
        "Fargo homes under $300k",
        "PropertyType Eq 'A' And City Eq 'Fargo' And MlsStatus Eq 'Active' "
        "And ListPrice Le 300000.0",
        "Active residential listings in Fargo at or below $300,000.",
    ),
    (
        "New construction, 4+ bedrooms",
        "NewConstructionYN Eq true And BedsTotal Ge 4",
        "Homes built 2023 or later with at least four bedrooms.",
    ),
    (
        "Twin Cities multi-family",
        "PropertyType Eq 'B' And City Eq 'Minneapolis','Saint Paul' And MlsStatus Ne 'Closed'",
        "Duplexes and up that are still on the market.",
    ),
    (
        "Dakotas, $200k-$400k",
        "StateOrProvince Eq 'ND','SD' And ListPrice Bt 200000.0,400000.0",
        "Anything in North or South Dakota between $200,000 and $400,000.",
    ),
    (
        "Recently updated",
        "ModificationTimestamp Gt 2024-09-01T00:00:00Z Not MlsStatus Eq 'Closed'",
        "Listings changed since September 2024 that have not closed.",
    ),
)


def _seed_contacts(member_id: str) -> list[Record]:
    rng = random.Random(f"{SEED}:contacts:{member_id}")
    records: list[Record] = []
    for index in range(rng.randint(4, 7)):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        city = rng.choice(_CITIES)
        moment = _EPOCH + timedelta(days=rng.randrange(0, 200), seconds=rng.randrange(86_400))
        contact_id = f"{moment:%Y%m%d%H%M%S}{index:06d}000000"
        records.append(
            {
                "ResourceUri": f"/v1/contacts/{contact_id}",
                "Id": contact_id,
                "DisplayName": f"{first} {last}",
                "FirstName": first,
                "LastName": last,
                "Company": None,
                "PrimaryEmail": f"{first.lower()}.{last.lower()}{index}@example.net",
                "PrimaryPhoneNumber": f"555-01{rng.randrange(100):02d}",
                "HomeStreetAddress": f"{rng.randrange(100, 9_900)} {rng.choice(_STREETS)} St",
                "HomeLocality": city.name,
                "HomeRegion": city.state,
                "HomePostalCode": rng.choice(city.zips),
                "Tags": sorted(rng.sample(["Buyer", "Seller", "Investor", "Past Client"], 1)),
                "OwnerId": member_id,
                "ModificationTimestamp": _iso(moment),
            }
        )
    return records


def _seed_saved_searches(member_id: str) -> list[Record]:
    rng = random.Random(f"{SEED}:savedsearches:{member_id}")
    chosen = rng.sample(range(len(_SEARCH_TEMPLATES)), rng.randint(2, 4))
    records: list[Record] = []
    for index, template in enumerate(sorted(chosen)):
        name, filter_text, description = _SEARCH_TEMPLATES[template]
        moment = _EPOCH + timedelta(days=rng.randrange(0, 200), seconds=rng.randrange(86_400))
        search_id = f"{moment:%Y%m%d%H%M%S}{index:06d}100000"
        records.append(
            {
                "ResourceUri": f"/v1/savedsearches/{search_id}",
                "Id": search_id,
                "Name": name,
                "Filter": filter_text,
                "Description": description,
                "OwnerId": member_id,
                "ModificationTimestamp": _iso(moment),
            }
        )
    return records


_SEEDERS: dict[Kind, Callable[[str], list[Record]]] = {
    "contacts": _seed_contacts,
    "savedsearches": _seed_saved_searches,
}


class ConflictError(Exception):
    """A write carried a ``ModificationTimestamp`` that no longer matches the stored record."""


class Store:
    """Per-process, thread-safe contacts and saved searches, seeded per member on first use.

    Every method returns deep copies, so callers can never alter stored state by accident.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[Kind, str], dict[str, Record]] = {}
        self._ids: Iterator[int] = itertools.count(1)
        self._last_stamp = datetime.min.replace(tzinfo=UTC)

    def _bucket(self, kind: Kind, member_id: str) -> dict[str, Record]:
        key = (kind, member_id)
        if key not in self._data:
            self._data[key] = {record["Id"]: record for record in _SEEDERS[kind](member_id)}
        return self._data[key]

    def _stamp(self) -> str:
        """A strictly increasing wall-clock timestamp (microseconds) for writes."""
        now = datetime.now(UTC)
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def list(self, kind: Kind, member_id: str) -> list[Record]:
        """Every record of the member's collection, in Id order."""
        with self._lock:
            bucket = self._bucket(kind, member_id)
            return [copy.deepcopy(bucket[key]) for key in sorted(bucket)]

    def get(self, kind: Kind, member_id: str, record_id: str) -> Record | None:
        """One record of the member's collection, or ``None``."""
        with self._lock:
            record = self._bucket(kind, member_id).get(record_id)
            return copy.deepcopy(record)

    def create(self, kind: Kind, member_id: str, fields: Mapping[str, Any]) -> Record:
        """Add a record with a fresh 26-digit Id and the current timestamp."""
        with self._lock:
            record_id = f"20250101{next(self._ids):018d}"
            record: Record = {"ResourceUri": f"/v1/{kind}/{record_id}", "Id": record_id}
            record.update(copy.deepcopy(dict(fields)))
            record["OwnerId"] = member_id
            record["ModificationTimestamp"] = self._stamp()
            self._bucket(kind, member_id)[record_id] = record
            return copy.deepcopy(record)

    def update(
        self,
        kind: Kind,
        member_id: str,
        record_id: str,
        fields: Mapping[str, Any],
        expected_timestamp: str | None = None,
    ) -> Record | None:
        """Merge ``fields`` into a record; ``None`` if absent.

        Raises :class:`ConflictError` when ``expected_timestamp`` is given and stale.
        """
        with self._lock:
            record = self._bucket(kind, member_id).get(record_id)
            if record is None:
                return None
            if expected_timestamp is not None and not _same_instant(
                expected_timestamp, record["ModificationTimestamp"]
            ):
                raise ConflictError(record["ModificationTimestamp"])
            record.update(copy.deepcopy(dict(fields)))
            record["ModificationTimestamp"] = self._stamp()
            return copy.deepcopy(record)

    def delete(self, kind: Kind, member_id: str, record_id: str) -> bool:
        """Remove a record; whether it existed."""
        with self._lock:
            return self._bucket(kind, member_id).pop(record_id, None) is not None

    def reset(self) -> None:
        """Forget every write: collections are re-seeded on next use, new Ids restart."""
        with self._lock:
            self._data.clear()
            self._ids = itertools.count(1)


def _same_instant(left: str, right: str) -> bool:
    try:
        return parse_timestamp(left) == parse_timestamp(right)
    except ValueError:
        return False


STORE = Store()
"""The process-wide store the Spark API views use."""


def reset() -> None:
    """Reset the writable demo data (contacts, saved searches) to its seeded state."""
    STORE.reset()
