"""Listing photos and open houses for the RESO ``Media`` and ``OpenHouse`` resources.

Every listing gets a few deterministic photos (drawn here as SVG house pictures, so the sandbox
needs no imaging library) and some active listings get open houses. A ``Media`` record's
``MediaURL`` is an absolute URL on the sandbox that any browser can load without a token, the way
production's photo CDN URLs work: ``<issuer>/photos/<ListingKey>/<n>.svg``.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta
from functools import cache
from typing import Any

from flask import Blueprint, Response, abort

from .listings_data import FieldType, Record, properties

bp = Blueprint("sandbox_media", __name__)

PHOTO_WIDTH = 640
PHOTO_HEIGHT = 480

MEDIA_FIELDS: dict[str, FieldType] = {
    "MediaKey": "string",
    "ResourceRecordKey": "string",
    "ResourceName": "string",
    "MediaCategory": "string",
    "MediaType": "string",
    "Order": "integer",
    "ShortDescription": "string",
    "ImageWidth": "integer",
    "ImageHeight": "integer",
    "ModificationTimestamp": "datetime",
}
"""``Media`` fields (``MediaURL`` is added per request: it names the sandbox's own host)."""

OPEN_HOUSE_FIELDS: dict[str, FieldType] = {
    "OpenHouseKey": "string",
    "ListingKey": "string",
    "OpenHouseDate": "date",
    "OpenHouseStartTime": "datetime",
    "OpenHouseEndTime": "datetime",
    "OpenHouseType": "string",
    "OpenHouseStatus": "string",
    "OpenHouseRemarks": "string",
    "ModificationTimestamp": "datetime",
}

_VIEWS = ("Front of the home", "Street view", "Living room", "Back yard", "Kitchen", "Bedroom")
_LAND_VIEWS = ("The lot", "Looking across the lot", "Road frontage")
_COMMERCIAL_VIEWS = ("Front of the building", "Street view", "Inside", "Parking")
#: RESO ``PropertyType`` → what its photos show (the rest are homes).
_VIEWS_BY_TYPE = {"Land": _LAND_VIEWS, "Commercial Sale": _COMMERCIAL_VIEWS}
_OPEN_HOUSE_DAY = date(2024, 6, 8)  # a Saturday near the demo data's "now"


def _rng(*parts: object) -> random.Random:
    seed = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def _photo_count(listing: Record) -> int:
    rng = _rng("count", listing["ListingKey"])
    return rng.randint(2, 3) if listing["PropertyType"] == "Land" else rng.randint(3, 6)


def _view(listing: Record, order: int) -> str:
    views = _VIEWS_BY_TYPE.get(listing["PropertyType"], _VIEWS)
    return views[(order - 1) % len(views)]


@cache
def _media_by_listing() -> dict[str, tuple[Record, ...]]:
    result: dict[str, tuple[Record, ...]] = {}
    for listing in properties():
        key = listing["ListingKey"]
        result[key] = tuple(
            {
                "MediaKey": f"{key}-{order}",
                "ResourceRecordKey": key,
                "ResourceName": "Property",
                "MediaCategory": "Photo",
                "MediaType": "image/svg+xml",
                "Order": order,
                "ShortDescription": _view(listing, order),
                "ImageWidth": PHOTO_WIDTH,
                "ImageHeight": PHOTO_HEIGHT,
                "ModificationTimestamp": listing["ModificationTimestamp"],
            }
            for order in range(1, _photo_count(listing) + 1)
        )
    return result


@cache
def _open_houses_by_listing() -> dict[str, tuple[Record, ...]]:
    result: dict[str, tuple[Record, ...]] = {}
    for listing in properties():
        key = listing["ListingKey"]
        rng = _rng("openhouse", key)
        if listing["StandardStatus"] != "Active" or rng.random() > 0.35:
            result[key] = ()
            continue
        houses = []
        for number in range(1, rng.randint(1, 2) + 1):
            day = _OPEN_HOUSE_DAY + timedelta(days=7 * (number - 1) + rng.choice((0, 1)))
            start = rng.choice((10, 11, 12, 13, 14))
            houses.append(
                {
                    "OpenHouseKey": f"{key}-OH{number}",
                    "ListingKey": key,
                    "OpenHouseDate": day.isoformat(),
                    "OpenHouseStartTime": f"{day.isoformat()}T{start:02d}:00:00Z",
                    "OpenHouseEndTime": f"{day.isoformat()}T{start + 2:02d}:00:00Z",
                    "OpenHouseType": "Public",
                    "OpenHouseStatus": "Active",
                    "OpenHouseRemarks": f"Come see {listing['UnparsedAddress']}.",
                    "ModificationTimestamp": listing["ModificationTimestamp"],
                }
            )
        result[key] = tuple(houses)
    return result


def media_url(base_url: str, record: Record) -> str:
    """The absolute, token-free URL of a photo on the sandbox at ``base_url``."""
    key, order = record["ResourceRecordKey"], record["Order"]
    return f"{base_url.rstrip('/')}/photos/{key}/{order}.svg"


def media_of(listing_key: str) -> tuple[Record, ...]:
    """The photos of one listing, in order (empty for an unknown key)."""
    return _media_by_listing().get(listing_key, ())


def open_houses_of(listing_key: str) -> tuple[Record, ...]:
    """The open houses of one listing (most listings have none)."""
    return _open_houses_by_listing().get(listing_key, ())


@cache
def all_media() -> tuple[Record, ...]:
    """Every photo of every listing (the ``Media`` resource), by listing then order."""
    return tuple(record for records in _media_by_listing().values() for record in records)


@cache
def all_open_houses() -> tuple[Record, ...]:
    """Every open house (the ``OpenHouse`` resource)."""
    return tuple(record for records in _open_houses_by_listing().values() for record in records)


# -- drawing --------------------------------------------------------------------------------

_WALLS = ("#d9c7a7", "#b8c4cc", "#e8e2d0", "#9fb4a0", "#c98f6b", "#f1efe9", "#8e9fb5")
_ROOFS = ("#5b4a42", "#3f4a55", "#7a3b2e", "#44474a", "#6b5d4f")
_DOORS = ("#7b2d26", "#1f3a5f", "#2f4f3a", "#3b3b3b", "#8a6d3b")
_SKIES = (("#7fb3e6", "#d7ecfb"), ("#f2a65a", "#fbe3c0"), ("#5d8fc9", "#c4def5"))


def _tree(x: float, y: float, size: float, shade: str) -> str:
    return (
        f'<rect x="{x - size * 0.08:.0f}" y="{y - size * 0.5:.0f}" width="{size * 0.16:.0f}" '
        f'height="{size * 0.5:.0f}" fill="#6b4f2f"/>'
        f'<circle cx="{x:.0f}" cy="{y - size * 0.75:.0f}" r="{size * 0.45:.0f}" fill="{shade}"/>'
        f'<circle cx="{x - size * 0.25:.0f}" cy="{y - size * 0.55:.0f}" r="{size * 0.3:.0f}" '
        f'fill="{shade}" opacity="0.9"/>'
    )


def _sky(rng: random.Random, ground: str) -> str:
    top, bottom = rng.choice(_SKIES)
    sun_x = rng.randint(60, 580)
    clouds = "".join(
        f'<ellipse cx="{rng.randint(40, 600)}" cy="{rng.randint(40, 130)}" '
        f'rx="{rng.randint(40, 80)}" ry="{rng.randint(12, 22)}" fill="#ffffff" opacity="0.8"/>'
        for _ in range(rng.randint(1, 3))
    )
    return (
        '<defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/>'
        "</linearGradient></defs>"
        f'<rect width="{PHOTO_WIDTH}" height="{PHOTO_HEIGHT}" fill="url(#sky)"/>'
        f'<circle cx="{sun_x}" cy="70" r="28" fill="#fff3b0" opacity="0.85"/>{clouds}'
        f'<rect y="330" width="{PHOTO_WIDTH}" height="150" fill="{ground}"/>'
    )


def _exterior(rng: random.Random, zoom: float) -> str:
    wall, roof, door = rng.choice(_WALLS), rng.choice(_ROOFS), rng.choice(_DOORS)
    width = 300 * zoom
    height = 150 * zoom
    left = (PHOTO_WIDTH - width) / 2 + rng.randint(-60, 60)
    base = 350.0
    top = base - height
    peak = top - 90 * zoom
    parts = [_sky(rng, "#6fa45a")]
    parts.append(
        f'<polygon points="{left - 20},{top} {left + width / 2},{peak} {left + width + 20},{top}" '
        f'fill="{roof}"/>'
    )
    parts.append(f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="{wall}"/>')
    door_w, door_h = 36 * zoom, 70 * zoom
    door_x = left + width / 2 - door_w / 2
    parts.append(
        f'<rect x="{door_x:.0f}" y="{base - door_h:.0f}" width="{door_w:.0f}" '
        f'height="{door_h:.0f}" fill="{door}"/>'
    )
    window = 40 * zoom
    for index in range(rng.choice((2, 4))):
        column = index % 2
        row = index // 2
        x = left + 25 * zoom + column * (width - 50 * zoom - window)
        y = top + 20 * zoom + row * 55 * zoom
        parts.append(
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{window:.0f}" height="{window:.0f}" '
            'fill="#cfe8f7" stroke="#ffffff" stroke-width="4"/>'
        )
    parts.append(
        f'<rect x="{door_x - 40:.0f}" y="{base:.0f}" width="{door_w + 80:.0f}" height="130" '
        'fill="#bdb5a6"/>'
    )
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5 and left > 70:
            x = rng.uniform(25, left - 35)
        else:
            x = rng.uniform(min(left + width + 35, 600), 620)
        parts.append(_tree(x, 360, rng.randint(70, 120), rng.choice(("#2f6b3a", "#3f7f45"))))
    return "".join(parts)


def _interior(rng: random.Random) -> str:
    wall, floor = rng.choice(_WALLS), rng.choice(("#a0764f", "#c8a27a", "#8c6a4f", "#d8d2c4"))
    sofa = rng.choice(("#4b5d73", "#7a4f4f", "#5f6b4f", "#9a8f80"))
    return (
        f'<rect width="{PHOTO_WIDTH}" height="{PHOTO_HEIGHT}" fill="{wall}"/>'
        f'<rect y="330" width="{PHOTO_WIDTH}" height="150" fill="{floor}"/>'
        '<rect x="380" y="90" width="170" height="150" fill="#cfe8f7" stroke="#ffffff" '
        'stroke-width="8"/><line x1="465" y1="90" x2="465" y2="240" stroke="#ffffff" '
        'stroke-width="6"/>'
        f'<rect x="70" y="260" width="260" height="80" rx="14" fill="{sofa}"/>'
        f'<rect x="60" y="230" width="40" height="110" rx="12" fill="{sofa}"/>'
        f'<rect x="300" y="230" width="40" height="110" rx="12" fill="{sofa}"/>'
        '<rect x="150" y="360" width="120" height="14" fill="#5a4636"/>'
        '<rect x="160" y="374" width="10" height="40" fill="#5a4636"/>'
        '<rect x="250" y="374" width="10" height="40" fill="#5a4636"/>'
        f'<circle cx="560" cy="330" r="30" fill="#3f7f45"/>'
        '<rect x="545" y="340" width="30" height="40" fill="#8a6d3b"/>'
    )


def _commercial(rng: random.Random, view: str) -> str:
    """A flat-roofed building with a shop front, its inside, or its parking lot."""
    wall = rng.choice(("#b8c4cc", "#c98f6b", "#9a8f80", "#d9c7a7"))
    if view == "Inside":
        return (
            f'<rect width="{PHOTO_WIDTH}" height="{PHOTO_HEIGHT}" fill="#e8e6e1"/>'
            f'<rect y="330" width="{PHOTO_WIDTH}" height="150" fill="#9a9a96"/>'
            + "".join(
                f'<rect x="{x}" y="40" width="90" height="12" fill="#fffbe6"/>'
                for x in range(40, 600, 140)
            )
            + '<rect x="60" y="150" width="520" height="160" fill="#cfe8f7" stroke="#7d8a96" '
            'stroke-width="6"/>'
        )
    parts = [_sky(rng, "#8d918f")]
    if view == "Parking":
        parts += [
            f'<rect x="{x}" y="380" width="6" height="90" fill="#ffffff"/>'
            for x in range(20, 640, 90)
        ]
        return "".join(parts) + f'<rect x="40" y="200" width="560" height="130" fill="{wall}"/>'
    parts.append(f'<rect x="70" y="130" width="500" height="220" fill="{wall}"/>')
    parts.append('<rect x="60" y="120" width="520" height="16" fill="#44474a"/>')
    parts.append('<rect x="200" y="150" width="240" height="34" fill="#1f3a5f"/>')
    for x in (100, 250, 400):
        parts.append(
            f'<rect x="{x}" y="220" width="130" height="130" fill="#cfe8f7" stroke="#44474a" '
            'stroke-width="5"/>'
        )
    return "".join(parts)


def _land(rng: random.Random) -> str:
    parts = [_sky(rng, rng.choice(("#8fb56a", "#a7b86a", "#7ea35a")))]
    for x in range(0, PHOTO_WIDTH, 40):
        parts.append(f'<rect x="{x}" y="345" width="6" height="40" fill="#7a5c3a"/>')
    parts.append(f'<rect y="355" width="{PHOTO_WIDTH}" height="5" fill="#7a5c3a"/>')
    for _ in range(rng.randint(2, 5)):
        parts.append(
            _tree(rng.randint(20, 620), rng.randint(320, 340), rng.randint(40, 90), "#3f7f45")
        )
    return "".join(parts)


def photo_svg(listing: Record, order: int) -> str:
    """An SVG picture of one listing's photo number ``order``: the same bytes every time."""
    rng = _rng("photo", listing["ListingKey"])  # the house looks the same in every photo
    view = _view(listing, order)
    if listing["PropertyType"] == "Land":
        body = _land(_rng("land", listing["ListingKey"], order))
    elif listing["PropertyType"] == "Commercial Sale":
        body = _commercial(_rng("commercial", listing["ListingKey"]), view)
    elif view in ("Living room", "Kitchen", "Bedroom"):
        body = _interior(_rng("room", listing["ListingKey"], order))
    else:
        body = _exterior(rng, 1.0 if order == 1 else 0.8)
    label = f"{listing['UnparsedAddress']} - {view}".replace("&", "and").replace("<", "")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PHOTO_WIDTH}" height="{PHOTO_HEIGHT}" '
        f'viewBox="0 0 {PHOTO_WIDTH} {PHOTO_HEIGHT}" role="img"><title>{label}</title>'
        f"{body}</svg>"
    )


@cache
def _property(listing_key: str) -> Record | None:
    return next((p for p in properties() if p["ListingKey"] == listing_key), None)


@bp.get("/photos/<listing_key>/<int:order>.svg")
def photo(listing_key: str, order: int) -> Response:
    """A listing photo, public like a CDN URL (no token), cacheable."""
    listing = _property(listing_key)
    if listing is None or not 1 <= order <= len(media_of(listing_key)):
        abort(404)
    response = Response(photo_svg(listing, order), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def with_media_url(record: Record, base_url: str) -> dict[str, Any]:
    """A ``Media`` record as served: with its absolute ``MediaURL``."""
    return {**record, "MediaURL": media_url(base_url, record)}
