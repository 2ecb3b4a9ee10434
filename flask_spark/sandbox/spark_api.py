"""The sandbox's Spark API subset: listings, my listings, contacts and saved searches under ``/v1``.

Every answer uses Spark's ``D`` envelope. Collections honour ``_filter`` (SparkQL, see
:mod:`.sparkql`), ``_select``, ``_orderby``, ``_limit`` (0-25, default 10), ``_page`` (1-based),
``_skip`` (then ``Pagination`` has ``CurrentOffset`` instead of ``CurrentPage``, as FBS's paging
page says), ``_skiptoken`` and ``_pagination`` (``0`` none, ``1`` a ``Pagination`` object,
``count`` the ``Pagination`` object with empty ``Results``).

``_skiptoken``: send it empty for the first page; the answer's ``Pagination.SkipToken`` is the
value for the next request, ``null`` after the last page. The token is the last returned record's
Id (clients should treat it as opaque); it takes precedence over ``_skip`` and ``_page``.

Errors (``{"D": {"Success": false, "Code", "Message"}}``): 400/1040 bad ``_filter`` syntax or
unknown field, 400/1041 filter too long, 400/2001 and 2002 filter values (those three carry
``SparkQLErrors``), 400/1053 invalid ``_limit`` / ``_page`` / ``_skip`` / ``_select`` /
``_orderby`` / ``_pagination`` / ``_skiptoken`` or a write field, 400/1050 a required write field
missing, 400/1035 a write body that is not JSON ``{"D": {...}}``, 404/404 unknown record,
405/1018 unsupported method, 409/1055 a write whose ``ModificationTimestamp`` is stale.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from flask import Blueprint, Response, g, jsonify, request

from . import listings_data as data
from . import sparkql
from .auth import SparkAPIError, spark_endpoint
from .listings_data import Kind, Page, QueryError, Record

bp = Blueprint("sandbox_spark_api", __name__, url_prefix="/v1")
"""Registered by the sandbox app factory; its routes live under ``/v1``."""

DEFAULT_LIMIT = 10
MAX_LIMIT = 25

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
"""Every route accepts all of these so that unsupported ones answer Spark's 405/1018."""


@bp.errorhandler(SparkAPIError)
def _render_error(error: SparkAPIError) -> Response:
    """Render Spark errors even when the blueprint is mounted outside the sandbox app."""
    return error.to_response()


def reset_store() -> None:
    """Forget every contact and saved search write (the sandbox's ``/_sandbox/reset`` calls it)."""
    data.reset()


# --------------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resource:
    """How one Spark collection is filtered, selected and shaped."""

    schema: data.Schema
    selectable: Collection[str]
    fields_of: Callable[[Record], Mapping[str, Any]]
    project: Callable[[Record, tuple[str, ...] | None], Record]


def _project_listing(record: Record, select: tuple[str, ...] | None) -> Record:
    return {
        "ResourceUri": record["ResourceUri"],
        "Id": record["Id"],
        "StandardFields": data.select_fields(record["StandardFields"], select),
    }


def _project_flat(record: Record, select: tuple[str, ...] | None) -> Record:
    if select is None:
        return dict(record)
    return {"ResourceUri": record["ResourceUri"], "Id": record["Id"]} | data.select_fields(
        record, select
    )


_LISTINGS = _Resource(
    data.LISTING_FIELDS, data.LISTING_FIELDS, lambda r: r["StandardFields"], _project_listing
)
_FLAT: dict[Kind, _Resource] = {
    "contacts": _Resource(
        data.CONTACT_FIELDS,
        {*data.CONTACT_FIELDS, "Tags", "OwnerId"},
        lambda r: r,
        _project_flat,
    ),
    "savedsearches": _Resource(
        data.SAVED_SEARCH_FIELDS,
        {*data.SAVED_SEARCH_FIELDS, "OwnerId"},
        lambda r: r,
        _project_flat,
    ),
}


def _allow(*methods: str) -> None:
    """Refuse the request's method unless listed (Spark answers 405 with code 1018)."""
    allowed = {*methods, "HEAD"} if "GET" in methods else set(methods)
    if request.method not in allowed:
        raise SparkAPIError(
            405,
            1018,
            f"The {request.method} method is not allowed on this resource",
            headers={"Allow": ", ".join(sorted(allowed))},
        )


def _query_failed(error: QueryError) -> NoReturn:
    """Re-raise a query parsing problem as the Spark error the views answer."""
    raise SparkAPIError(400, error.code, error.message, sparkql_errors=error.details) from error


def _ok(results: list[Record], pagination: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"Success": True, "Results": results}
    if pagination is not None:
        body["Pagination"] = pagination
    return jsonify({"D": body})


def _skiptoken_offset(ordered: list[Record], token: str, default_order: bool) -> int:
    """Where the page after ``token`` (the previous page's last Id) starts."""
    if token == "":
        return 0
    ids = [str(record["Id"]) for record in ordered]
    if token in ids:
        return ids.index(token) + 1
    if default_order:  # the record vanished: records are in Id order, resume after it
        return sum(1 for record_id in ids if record_id <= token)
    raise SparkAPIError(400, 1053, "_skiptoken does not belong to this query")


def _collection(records: list[Record], resource: _Resource) -> Response:
    """Answer a collection GET with Spark's filtering, ordering, selection and paging."""
    args = request.args
    try:
        predicate = sparkql.parse_filter(args.get("_filter"), resource.schema)
        select = sparkql.parse_select(args.get("_select"), resource.selectable)
        order = sparkql.parse_orderby(args.get("_orderby"), resource.schema)
        limit = data.parse_bounded_int(args.get("_limit"), "_limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
        page_number = data.parse_bounded_int(args.get("_page"), "_page", 1, 1)
        skip = data.parse_bounded_int(args.get("_skip"), "_skip", (page_number - 1) * limit, 0)
    except QueryError as error:
        _query_failed(error)
    mode = args.get("_pagination", "0")
    if mode not in ("0", "1", "count"):
        raise SparkAPIError(400, 1053, "_pagination must be 0, 1 or count")
    ordered = data.filter_and_order(records, predicate, order, resource.schema, resource.fields_of)
    skiptoken = args.get("_skiptoken")
    offset = skip if skiptoken is None else _skiptoken_offset(ordered, skiptoken, not order)
    page = data.page_of(ordered, offset, limit)

    results = [resource.project(record, select) for record in page.records]
    pagination: dict[str, Any] | None = None
    if mode != "0" or skiptoken is not None:
        pagination = _pagination(page, by_offset="_skip" in args and skiptoken is None)
        if skiptoken is not None:
            pagination["SkipToken"] = str(page.records[-1]["Id"]) if page.has_more else None
    return _ok([] if mode == "count" else results, pagination)


def _pagination(page: Page[Record], *, by_offset: bool) -> dict[str, Any]:
    """Spark's ``Pagination``: with ``_skip``, ``CurrentOffset`` replaces ``CurrentPage``."""
    pagination: dict[str, Any] = {
        "TotalRows": page.total,
        "PageSize": page.limit,
        "TotalPages": data.ceil_div(page.total, page.limit),
    }
    if by_offset:
        pagination["CurrentOffset"] = page.offset
    else:
        pagination["CurrentPage"] = page.offset // page.limit + 1 if page.limit else 1
    return pagination


def _single(record: Record | None, resource: _Resource, what: str) -> Response:
    """Answer a single-record GET (``_select`` honoured) or Spark's 404."""
    if record is None:
        raise SparkAPIError(404, 404, f"{what} not found")
    try:
        select = sparkql.parse_select(request.args.get("_select"), resource.selectable)
    except QueryError as error:
        _query_failed(error)
    return _ok([resource.project(record, select)])


def _member_id() -> str:
    member_id: str = g.spark_token.member_id
    return member_id


# --------------------------------------------------------------------------------------------------
# Listings
# --------------------------------------------------------------------------------------------------


@bp.route("/listings", methods=_METHODS)
@spark_endpoint
def listings() -> Response:
    """``GET /v1/listings``: every demo listing."""
    _allow("GET")
    return _collection(list(data.listings()), _LISTINGS)


@bp.route("/listings/<listing_id>", methods=_METHODS)
@spark_endpoint
def listing(listing_id: str) -> Response:
    """``GET /v1/listings/<Id>``: one listing."""
    _allow("GET")
    return _single(data.get_listing(listing_id), _LISTINGS, "Listing")


@bp.route("/my/listings", methods=_METHODS)
@spark_endpoint
def my_listings() -> Response:
    """``GET /v1/my/listings``: the listings whose ListAgentId is the token's member."""
    _allow("GET")
    member_id = _member_id()
    mine = [r for r in data.listings() if r["StandardFields"]["ListAgentId"] == member_id]
    return _collection(mine, _LISTINGS)


# --------------------------------------------------------------------------------------------------
# Contacts and saved searches (the token member's own, writable)
# --------------------------------------------------------------------------------------------------

_PLURAL_KEYS: dict[Kind, str] = {"contacts": "Contacts", "savedsearches": "SavedSearches"}
_WRITABLE: dict[Kind, dict[str, type]] = {
    "contacts": data.CONTACT_WRITABLE,
    "savedsearches": data.SAVED_SEARCH_WRITABLE,
}
_READ_ONLY = frozenset({"Id", "ResourceUri", "OwnerId", "ModificationTimestamp"})


def _write_items(kind: Kind) -> list[dict[str, Any]]:
    """The objects a write carries: ``{"D": {...}}`` or ``{"D": {"Contacts": [{...}, ...]}}``."""
    if request.mimetype != "application/json":
        raise SparkAPIError(400, 1035, "Writes need Content-Type: application/json")
    body = request.get_json(silent=True)
    envelope = body.get("D") if isinstance(body, dict) else None
    if not isinstance(envelope, dict):
        raise SparkAPIError(400, 1035, 'The request body must be a JSON object {"D": {...}}')
    items = envelope.get(_PLURAL_KEYS[kind], [envelope])
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise SparkAPIError(400, 1035, f"D.{_PLURAL_KEYS[kind]} must be a list of objects")
    return items


def _writable_fields(kind: Kind, item: Mapping[str, Any]) -> dict[str, Any]:
    """Type-check a written object; read-only fields are ignored, unknown ones refused (1053)."""
    allowed = _WRITABLE[kind]
    fields: dict[str, Any] = {}
    for name, value in item.items():
        if name in _READ_ONLY:
            continue
        if name not in allowed:
            raise SparkAPIError(400, 1053, f"{name} is not a writable field")
        expected = allowed[name]
        valid = value is None or isinstance(value, expected)
        if expected is list:
            valid = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not valid:
            kind_name = "a list of strings" if expected is list else "a string"
            raise SparkAPIError(400, 1053, f"{name} must be {kind_name}")
        fields[name] = value
    if kind == "savedsearches" and fields.get("Filter") is not None:
        try:
            sparkql.parse_filter(fields["Filter"], data.LISTING_FIELDS)
        except QueryError as error:
            _query_failed(error)
    return fields


def _complete_new(kind: Kind, fields: dict[str, Any]) -> dict[str, Any]:
    """Check required fields of a new record and fill the derived ones (1050 when missing)."""
    if kind == "savedsearches":
        missing = [name for name in ("Name", "Filter") if not fields.get(name)]
        if missing:
            raise SparkAPIError(400, 1050, f"Missing required field(s): {', '.join(missing)}")
        return {"Description": None} | fields
    if not fields.get("DisplayName"):
        names = [fields.get("FirstName"), fields.get("LastName")]
        display = " ".join(n for n in names if n) or fields.get("PrimaryEmail")
        if not display:
            raise SparkAPIError(
                400, 1050, "A contact needs DisplayName, FirstName, LastName or PrimaryEmail"
            )
        fields["DisplayName"] = display
    blank = dict.fromkeys(data.CONTACT_WRITABLE) | {"Tags": []}
    return blank | fields


def _list_or_create(kind: Kind) -> Response:
    _allow("GET", "POST")
    member_id = _member_id()
    if request.method == "GET":
        return _collection(data.STORE.list(kind, member_id), _FLAT[kind])
    new_fields = [_complete_new(kind, _writable_fields(kind, item)) for item in _write_items(kind)]
    created = [data.STORE.create(kind, member_id, fields) for fields in new_fields]
    return _ok([{"ResourceUri": r["ResourceUri"], "Id": r["Id"]} for r in created])


def _item(kind: Kind, record_id: str) -> Response:
    _allow("GET", "PUT", "DELETE")
    member_id = _member_id()
    what = "Contact" if kind == "contacts" else "Saved search"
    if request.method == "GET":
        return _single(data.STORE.get(kind, member_id, record_id), _FLAT[kind], what)
    if request.method == "DELETE":
        if not data.STORE.delete(kind, member_id, record_id):
            raise SparkAPIError(404, 404, f"{what} not found")
        return _ok([])
    items = _write_items(kind)
    if len(items) != 1:
        raise SparkAPIError(400, 1035, "PUT takes exactly one object")
    fields = _writable_fields(kind, items[0])
    expected = items[0].get("ModificationTimestamp")
    try:
        updated = data.STORE.update(
            kind, member_id, record_id, fields, expected if isinstance(expected, str) else None
        )
    except data.ConflictError as error:
        raise SparkAPIError(
            409, 1055, f"{what} was modified at {error.args[0]}; reload it and try again"
        ) from error
    if updated is None:
        raise SparkAPIError(404, 404, f"{what} not found")
    return _ok([updated])


@bp.route("/contacts", methods=_METHODS)
@spark_endpoint
def contacts() -> Response:
    """``GET`` the member's contacts, ``POST`` new ones."""
    return _list_or_create("contacts")


@bp.route("/contacts/<contact_id>", methods=_METHODS)
@spark_endpoint
def contact(contact_id: str) -> Response:
    """``GET``, ``PUT`` (partial update) or ``DELETE`` one of the member's contacts."""
    return _item("contacts", contact_id)


@bp.route("/savedsearches", methods=_METHODS)
@spark_endpoint
def saved_searches() -> Response:
    """``GET`` the member's saved searches, ``POST`` new ones (the Filter must be valid SparkQL)."""
    return _list_or_create("savedsearches")


@bp.route("/savedsearches/<search_id>", methods=_METHODS)
@spark_endpoint
def saved_search(search_id: str) -> Response:
    """``GET``, ``PUT`` (partial update) or ``DELETE`` one of the member's saved searches."""
    return _item("savedsearches", search_id)
