"""Listing searches in SparkQL: built from the search form, and described in words.

A saved search's ``Filter`` is SparkQL (``City Eq 'Fargo' And ListPrice Ge 200000.0``); people
would rather read "in Fargo, from $200,000". :func:`describe` handles the simple shapes that
saved searches usually have and returns None for anything else (the page then shows the raw
filter only), so a description is never a guess.
"""

from __future__ import annotations

import re

STATUSES = ("Active", "Pending", "Closed")
#: The common Flexmls property type codes (an MLS may define its own letters).
PROPERTY_TYPES = {"A": "residential", "B": "multi-family", "C": "land", "D": "commercial"}

_VALUE = r"'(?:[^'\\]|\\.)*'|[^\s,']+"
_CLAUSE = re.compile(
    rf"^\s*(?P<field>[A-Za-z][A-Za-z0-9_.]*)\s+(?P<op>Eq|Ne|Gt|Ge|Lt|Le|Bt)\s+"
    rf"(?P<values>(?:{_VALUE})(?:\s*,\s*(?:{_VALUE}))*)\s*$"
)
_JOINER = re.compile(r"\s+(And|Not)\s+")
#: The order the clauses are said in: what, then where, then how much.
_ORDER = {
    "MlsStatus": 0,
    "StandardStatus": 0,
    "PropertyType": 1,
    "PropertySubType": 1,
    "NewConstructionYN": 2,
    "BedsTotal": 3,
    "BathsTotal": 3,
    "City": 4,
    "PostalCode": 4,
    "CountyOrParish": 4,
    "StateOrProvince": 4,
    "ListPrice": 5,
}


def build_filter(form: dict[str, str]) -> str:
    """A SparkQL ``_filter`` from the search form (values validated, strings quoted)."""
    clauses: list[str] = []
    if form["status"] in STATUSES:
        clauses.append(f"MlsStatus Eq '{form['status']}'")
    city = re.sub(r"[^A-Za-z .-]", "", form["city"]).strip()  # checked before; kept safe here
    if city:
        clauses.append(f"City Eq '{city}'")
    for field, op in (("min_price", "Ge"), ("max_price", "Le")):
        value = form[field].replace(",", "").replace("$", "").strip()
        if value.isascii() and value.isdigit():
            clauses.append(f"ListPrice {op} {int(value)}.0")
    return " And ".join(clauses)


def describe(sparkql: str | None) -> str | None:
    """``City Eq 'Fargo' And ListPrice Ge 200000.0`` → ``in Fargo, from $200,000``; None when
    the filter uses anything beyond simple ``And``/``Not`` clauses on well-known fields."""
    if not sparkql or "(" in sparkql or " Or " in sparkql:
        return None
    parts = _JOINER.split(sparkql.strip())
    words: list[tuple[int, str]] = []
    negate = False
    for index, part in enumerate(parts):
        if index % 2:  # a joiner
            negate = part == "Not"
            continue
        match = _CLAUSE.match(part)
        if match is None:
            return None
        values = [_unquote(v) for v in re.findall(_VALUE, match["values"])]
        phrase = _phrase(match["field"], match["op"], values)
        if phrase is None:
            return None
        words.append((_ORDER.get(match["field"], 9), f"not {phrase}" if negate else phrase))
    words.sort(key=lambda pair: pair[0])
    text = ", ".join(phrase for _, phrase in words)
    # "active, residential, ..." reads better as "active residential, ..."
    return re.sub(
        r"^(active|pending|closed), (residential|multi-family|land|commercial)", r"\1 \2", text
    )


def _unquote(value: str) -> str:
    return value[1:-1].replace("\\'", "'") if value.startswith("'") else value


def _money(value: str) -> str:
    return f"${float(value):,.0f}"


def _either(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _phrase(field: str, op: str, values: list[str]) -> str | None:
    """One clause in words, or None when it is not one we know how to say."""
    if field == "ListPrice":
        prices = [_money(v) for v in values if _is_number(v)]
        if len(prices) != len(values):
            return None
        return {
            "Ge": lambda: f"from {prices[0]}",
            "Gt": lambda: f"over {prices[0]}",
            "Le": lambda: f"up to {prices[0]}",
            "Lt": lambda: f"under {prices[0]}",
            "Bt": lambda: f"{prices[0]}\N{EN DASH}{prices[1]}" if len(prices) == 2 else None,
            "Eq": lambda: f"at {_either(prices)}",
        }.get(op, lambda: None)()
    if op in ("Eq", "Ne"):
        prefix = "not " if op == "Ne" else ""
        if field in ("City", "StateOrProvince", "PostalCode", "CountyOrParish"):
            return f"{prefix}in {_either(values)}"
        if field in ("MlsStatus", "StandardStatus"):
            return f"{prefix}{_either([v.lower() for v in values])}"
        if field == "PropertyType" and all(v in PROPERTY_TYPES for v in values):
            return f"{prefix}{_either([PROPERTY_TYPES[v] for v in values])}"
        if field == "PropertySubType":
            return f"{prefix}{_either(values)}"
        if field == "NewConstructionYN" and values in (["true"], ["false"]):
            new = (values == ["true"]) != (op == "Ne")
            return "new construction" if new else "not new construction"
    rooms = {"BedsTotal": "bedroom", "BathsTotal": "bathroom"}
    if field in rooms and len(values) == 1 and _is_number(values[0]):
        count = f"{float(values[0]):g}"
        noun = rooms[field] + ("" if count == "1" else "s")
        return {
            "Ge": f"{count}+ {noun}",
            "Gt": f"more than {count} {noun}",
            "Le": f"at most {count} {noun}",
            "Lt": f"fewer than {count} {noun}",
            "Eq": f"{count} {noun}",
        }.get(op)
    if field == "ModificationTimestamp" and op in ("Gt", "Ge") and len(values) == 1:
        return f"changed since {values[0][:10]}"
    return None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
