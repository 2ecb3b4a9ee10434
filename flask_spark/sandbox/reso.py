"""The sandbox's RESO Web API subset under ``/Reso/OData``: Property, Member, Office, $metadata.

Collections honour ``$filter`` (see :mod:`.odata`), ``$select``, ``$orderby``, ``$top`` (0-25,
default 10), ``$skip`` and ``$count=true``; other system options (``$expand`` ...) are ignored.
A collection answers ``{"@odata.context", "value", "@odata.count"?, "@odata.nextLink"?}``; the
next link is absolute, repeats every parameter and advances ``$skip``, and is present only while
records remain. ``Resource('<key>')`` answers the entity itself with a ``#Resource/$entity``
context.

Errors are OData objects ``{"error": {"code", "message"}}`` whose code is the Spark code as a
string: 400 "1040" bad ``$filter`` syntax or unknown field, 400 "1041" filter too long, 400 "2001"
a value of the wrong type, 400 "1053" invalid ``$top`` / ``$skip`` / ``$count`` / ``$select`` /
``$orderby``, 404 "404" unknown key, 405 "1018" a method other than GET. (Token and user-agent
failures come from :func:`~.auth.reso_endpoint` in Spark's D envelope, as sparkapi.com does.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, jsonify, request, url_for

from . import listings_data as data
from . import odata
from .auth import ODataError, SparkAPIError, reso_endpoint
from .listings_data import QueryError, Record

bp = Blueprint("sandbox_reso", __name__, url_prefix="/Reso/OData")
"""Registered by the sandbox app factory; its routes live under ``/Reso/OData``."""

DEFAULT_TOP = 10
MAX_TOP = 25
NAMESPACE = "org.reso.metadata"

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
"""Every route accepts all of these so that unsupported ones answer an OData 405."""


@bp.errorhandler(ODataError)
@bp.errorhandler(SparkAPIError)
def _render_error(error: ODataError | SparkAPIError) -> Response:
    """Render errors even when the blueprint is mounted outside the sandbox app."""
    return error.to_response()


@dataclass(frozen=True)
class _EntitySet:
    """One RESO resource: its records, schema and key field."""

    records: Callable[[], tuple[Record, ...]]
    schema: data.Schema
    key: str


_ENTITY_SETS: dict[str, _EntitySet] = {
    "Property": _EntitySet(data.properties, data.PROPERTY_FIELDS, "ListingKey"),
    "Member": _EntitySet(data.reso_members, data.MEMBER_FIELDS, "MemberKey"),
    "Office": _EntitySet(data.reso_offices, data.OFFICE_FIELDS, "OfficeKey"),
}
_RESOURCE = "<any(Property,Member,Office):resource>"


def _allow_get() -> None:
    if request.method not in ("GET", "HEAD"):
        raise ODataError(405, 1018, f"The {request.method} method is not allowed; use GET")


def _bad_query(error: QueryError) -> NoReturn:
    raise ODataError(400, error.code, error.message) from error


def _context(fragment: str) -> str:
    return f"{url_for('.metadata', _external=True)}#{fragment}"


def _next_link(skip: int) -> str:
    """This request's absolute URL with ``$skip`` replaced (every other parameter kept)."""
    params = [(key, value) for key, value in request.args.items(multi=True) if key != "$skip"]
    params.append(("$skip", str(skip)))
    return f"{request.base_url}?{urlencode(params, safe='$,()')}"


@bp.route(f"/{_RESOURCE}", methods=_METHODS)
@reso_endpoint
def collection(resource: str) -> Response:
    """``GET /Reso/OData/<Resource>`` with OData query options."""
    _allow_get()
    entity_set = _ENTITY_SETS[resource]
    args = request.args
    try:
        predicate = odata.parse_filter(args.get("$filter"), entity_set.schema)
        select = odata.parse_select(args.get("$select"), entity_set.schema)
        order = odata.parse_orderby(args.get("$orderby"), entity_set.schema)
        top = data.parse_bounded_int(args.get("$top"), "$top", DEFAULT_TOP, 0, MAX_TOP)
        skip = data.parse_bounded_int(args.get("$skip"), "$skip", 0, 0)
    except QueryError as error:
        _bad_query(error)
    count = args.get("$count", "false")
    if count not in ("true", "false"):
        raise ODataError(400, 1053, "$count must be true or false")

    ordered = data.filter_and_order(
        entity_set.records(), predicate, order, entity_set.schema, lambda record: record
    )
    page = data.page_of(ordered, skip, top)
    body: dict[str, Any] = {"@odata.context": _context(resource)}
    if count == "true":
        body["@odata.count"] = page.total
    body["value"] = [data.select_fields(record, select) for record in page.records]
    if page.has_more and top > 0:
        body["@odata.nextLink"] = _next_link(skip + len(page.records))
    return jsonify(body)


@bp.route(f"/{_RESOURCE}('<key>')", methods=_METHODS)
@reso_endpoint
def entity(resource: str, key: str) -> Response:
    """``GET /Reso/OData/<Resource>('<key>')``: one entity (``$select`` honoured)."""
    _allow_get()
    entity_set = _ENTITY_SETS[resource]
    record = next((r for r in entity_set.records() if r[entity_set.key] == key), None)
    if record is None:
        raise ODataError(404, 404, f"No {resource} with key '{key}'")
    try:
        select = odata.parse_select(request.args.get("$select"), entity_set.schema)
    except QueryError as error:
        _bad_query(error)
    return jsonify(
        {"@odata.context": _context(f"{resource}/$entity")} | data.select_fields(record, select)
    )


@bp.route("/", methods=_METHODS)
@reso_endpoint
def service_document() -> Response:
    """The OData service document: the entity sets this sandbox serves."""
    _allow_get()
    return jsonify(
        {
            "@odata.context": url_for(".metadata", _external=True),
            "value": [{"name": name, "kind": "EntitySet", "url": name} for name in _ENTITY_SETS],
        }
    )


_EDM_TYPES: dict[str, str] = {
    "string": "Edm.String",
    "integer": "Edm.Int64",
    "decimal": "Edm.Decimal",
    "boolean": "Edm.Boolean",
    "date": "Edm.Date",
    "datetime": "Edm.DateTimeOffset",
}


def metadata_xml() -> bytes:
    """A small CSDL (OData v4 ``$metadata``) document describing the three entity sets."""
    edmx = "http://docs.oasis-open.org/odata/ns/edmx"
    ET.register_namespace("edmx", edmx)
    root = ET.Element(f"{{{edmx}}}Edmx", {"Version": "4.0"})
    services = ET.SubElement(root, f"{{{edmx}}}DataServices")
    schema = ET.SubElement(
        services,
        "Schema",
        {"xmlns": "http://docs.oasis-open.org/odata/ns/edm", "Namespace": NAMESPACE},
    )
    for name, entity_set in _ENTITY_SETS.items():
        entity_type = ET.SubElement(schema, "EntityType", {"Name": name})
        key = ET.SubElement(entity_type, "Key")
        ET.SubElement(key, "PropertyRef", {"Name": entity_set.key})
        for field_name, ftype in entity_set.schema.items():
            attributes = {"Name": field_name, "Type": _EDM_TYPES[ftype]}
            if field_name == entity_set.key:
                attributes["Nullable"] = "false"
            ET.SubElement(entity_type, "Property", attributes)
    container = ET.SubElement(schema, "EntityContainer", {"Name": "Default"})
    for name in _ENTITY_SETS:
        ET.SubElement(container, "EntitySet", {"Name": name, "EntityType": f"{NAMESPACE}.{name}"})
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


@bp.route("/$metadata", methods=_METHODS)
@reso_endpoint
def metadata() -> Response:
    """``GET /Reso/OData/$metadata``: the CSDL XML document."""
    _allow_get()
    return Response(metadata_xml(), mimetype="application/xml")
