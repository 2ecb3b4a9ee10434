"""The sandbox's RESO Web API subset under ``/Reso/OData``: Property, Member, Office, OpenHouse,
Media and $metadata, paged the way production pages.

Collections honour ``$filter`` (see :mod:`.odata`), ``$select``, ``$orderby``, ``$top`` (1-25,
default 10, as FBS documents), ``$skip``, ``$count=true`` and, on ``Property``,
``$expand=Media,OpenHouse``. A collection answers ``{"@odata.context", "value",
"@odata.count"?, "@odata.nextLink"?}``; like production's, the next link carries an opaque
``$skiptoken`` bound to the query (clients must follow it as given), and is present only while
records remain. ``Resource('<key>')`` answers the entity itself with a ``#Resource/$entity``
context; ``Property('<key>')/Media`` and ``/OpenHouse`` a listing's photos and open houses. Photos
are served token-free at their ``MediaURL`` (see :mod:`.media`).

Every error is an OData object ``{"error": {"code", "message"}}`` whose code is the Spark code as a
string: 401 "1000" / "1020" a missing, revoked or expired token (no ``WWW-Authenticate`` unless
the ``reso_www_authenticate`` fault is armed), 400 "1016" no user agent, 400 "1040" bad
``$filter`` syntax or unknown field, 400 "1041" filter too long, 400 "2001" a value of the wrong
type, 400 "1053" invalid ``$top`` / ``$skip`` / ``$skiptoken`` / ``$count`` / ``$select`` /
``$orderby`` / ``$expand``, 404 "404" unknown key, 405 "1018" a method other than GET.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, jsonify, request, url_for

from . import listings_data as data
from . import media, odata
from .auth import ODataError, SparkAPIError, current_state, reso_endpoint
from .listings_data import QueryError, Record

bp = Blueprint("sandbox_reso", __name__, url_prefix="/Reso/OData")
"""Registered by the sandbox app factory; its routes live under ``/Reso/OData``."""

DEFAULT_TOP = 10
MAX_TOP = 25
_SKIPTOKEN_PREFIX = "st1+"
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
    expandable: tuple[str, ...] = ()


def _media_records() -> tuple[Record, ...]:
    base = current_state().issuer
    return tuple(media.with_media_url(record, base) for record in media.all_media())


_ENTITY_SETS: dict[str, _EntitySet] = {
    "Property": _EntitySet(
        data.properties, data.PROPERTY_FIELDS, "ListingKey", ("Media", "OpenHouse")
    ),
    "Member": _EntitySet(data.reso_members, data.MEMBER_FIELDS, "MemberKey"),
    "Office": _EntitySet(data.reso_offices, data.OFFICE_FIELDS, "OfficeKey"),
    "OpenHouse": _EntitySet(media.all_open_houses, media.OPEN_HOUSE_FIELDS, "OpenHouseKey"),
    "Media": _EntitySet(_media_records, {**media.MEDIA_FIELDS, "MediaURL": "string"}, "MediaKey"),
}
_RESOURCE = "<any(Property,Member,Office,OpenHouse,Media):resource>"


def _related(name: str, listing_key: str) -> list[Record]:
    """A listing's ``Media`` (with their URLs) or ``OpenHouse`` records."""
    if name == "Media":
        base = current_state().issuer
        return [media.with_media_url(record, base) for record in media.media_of(listing_key)]
    return [dict(record) for record in media.open_houses_of(listing_key)]


def _allow_get() -> None:
    if request.method not in ("GET", "HEAD"):
        raise ODataError(405, 1018, f"The {request.method} method is not allowed; use GET")


def _bad_query(error: QueryError) -> NoReturn:
    raise ODataError(400, error.code, error.message) from error


def _context(fragment: str) -> str:
    return f"{url_for('.metadata', _external=True)}#{fragment}"


def _parse_expand(text: str | None, entity_set: _EntitySet, resource: str) -> tuple[str, ...]:
    """``$expand=Media,OpenHouse`` → the navigation properties to embed; 1053 otherwise."""
    if text is None or not text.strip():
        return ()
    names = tuple(name.strip() for name in text.split(","))
    unknown = [name for name in names if name not in entity_set.expandable]
    if unknown:
        can = ", ".join(entity_set.expandable) or "nothing"
        raise ODataError(
            400, 1053, f"$expand: {resource} cannot expand {', '.join(unknown)} (only {can})"
        )
    return names


def _query_digest() -> str:
    """What a skiptoken is bound to: every parameter but ``$skip`` and ``$skiptoken``."""
    params = sorted(
        (key, value)
        for key, value in request.args.items(multi=True)
        if key not in ("$skip", "$skiptoken")
    )
    joined = "&".join(f"{key}={value}" for key, value in params)
    return hashlib.sha256(f"{request.path}?{joined}".encode()).hexdigest()[:16]


def _make_skiptoken(offset: int) -> str:
    """An opaque ``$skiptoken`` for the page at ``offset`` of this very query.

    Standard base64 behind a ``+``: a client that decodes the nextLink and rebuilds it (a ``+``
    read back as a space) breaks it, as it would production's opaque tokens.
    """
    payload = json.dumps({"o": offset, "q": _query_digest()}).encode()
    return _SKIPTOKEN_PREFIX + base64.b64encode(payload).decode("ascii")


def _read_skiptoken(token: str) -> int:
    """The offset a ``$skiptoken`` stands for; 400/1053 when it is not one of this query's."""
    try:
        if not token.startswith(_SKIPTOKEN_PREFIX):
            raise ValueError(token)
        payload = json.loads(base64.b64decode(token[len(_SKIPTOKEN_PREFIX) :], validate=True))
        offset = payload["o"]
        if payload["q"] != _query_digest() or not isinstance(offset, int) or offset < 0:
            raise ValueError(token)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ODataError(
            400, 1053, "$skiptoken is invalid or does not belong to this query"
        ) from None
    return offset


def _next_link(offset: int) -> str:
    """This request's absolute URL with a ``$skiptoken`` for ``offset`` (other parameters kept,
    ``$skip`` dropped: the token carries the position)."""
    params = [
        (key, value)
        for key, value in request.args.items(multi=True)
        if key not in ("$skip", "$skiptoken")
    ]
    params.append(("$skiptoken", _make_skiptoken(offset)))
    return f"{request.base_url}?{urlencode(params, safe='$,()')}"


@bp.route(f"/{_RESOURCE}", methods=_METHODS)
@reso_endpoint
def collection(resource: str) -> Response:
    """``GET /Reso/OData/<Resource>`` with OData query options."""
    _allow_get()
    entity_set = _ENTITY_SETS[resource]
    return _collection(entity_set, resource, entity_set.records(), resource)


def _collection(
    entity_set: _EntitySet, resource: str, records: Sequence[Record], context: str
) -> Response:
    """Answer a collection with ``$filter``, ``$select``, ``$orderby``, ``$expand``, ``$top``,
    ``$skip`` / ``$skiptoken`` and ``$count``."""
    args = request.args
    try:
        predicate = odata.parse_filter(args.get("$filter"), entity_set.schema)
        select = odata.parse_select(args.get("$select"), entity_set.schema)
        order = odata.parse_orderby(args.get("$orderby"), entity_set.schema)
        top = data.parse_bounded_int(args.get("$top"), "$top", DEFAULT_TOP, 1, MAX_TOP)
        skip = data.parse_bounded_int(args.get("$skip"), "$skip", 0, 0)
    except QueryError as error:
        _bad_query(error)
    expand = _parse_expand(args.get("$expand"), entity_set, resource)
    count = args.get("$count", "false")
    if count not in ("true", "false"):
        raise ODataError(400, 1053, "$count must be true or false")
    if args.get("$skiptoken") is not None:
        skip = _read_skiptoken(args["$skiptoken"])

    ordered = data.filter_and_order(records, predicate, order, entity_set.schema, lambda r: r)
    page = data.page_of(ordered, skip, top)
    body: dict[str, Any] = {"@odata.context": _context(context)}
    if count == "true":
        body["@odata.count"] = page.total
    body["value"] = [_present(record, entity_set, select, expand) for record in page.records]
    if page.has_more:
        body["@odata.nextLink"] = _next_link(skip + len(page.records))
    return jsonify(body)


def _present(
    record: Record, entity_set: _EntitySet, select: Sequence[str] | None, expand: Sequence[str]
) -> dict[str, Any]:
    """One record as answered: the selected fields, then each expanded navigation property."""
    shown = data.select_fields(record, select)
    for name in expand:
        shown[name] = _related(name, record[entity_set.key])
    return shown


def _find(resource: str, key: str) -> tuple[_EntitySet, Record]:
    entity_set = _ENTITY_SETS[resource]
    record = next((r for r in entity_set.records() if r[entity_set.key] == key), None)
    if record is None:
        raise ODataError(404, 404, f"No {resource} with key '{key}'")
    return entity_set, record


@bp.route(f"/{_RESOURCE}('<key>')", methods=_METHODS)
@reso_endpoint
def entity(resource: str, key: str) -> Response:
    """``GET /Reso/OData/<Resource>('<key>')``: one entity (``$select``, ``$expand`` honoured)."""
    _allow_get()
    entity_set, record = _find(resource, key)
    try:
        select = odata.parse_select(request.args.get("$select"), entity_set.schema)
    except QueryError as error:
        _bad_query(error)
    expand = _parse_expand(request.args.get("$expand"), entity_set, resource)
    return jsonify(
        {"@odata.context": _context(f"{resource}/$entity")}
        | _present(record, entity_set, select, expand)
    )


@bp.route("/Property('<key>')/<any(Media,OpenHouse):related>", methods=_METHODS)
@reso_endpoint
def related(key: str, related: str) -> Response:
    """``GET /Reso/OData/Property('<key>')/Media`` (or ``/OpenHouse``): a listing's photos."""
    _allow_get()
    _find("Property", key)
    return _collection(
        _ENTITY_SETS[related], related, _related(related, key), f"Property('{key}')/{related}"
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
