"""SparkQL for the sandbox: ``_filter`` compiled into a predicate, plus ``_orderby`` / ``_select``.

A small recursive-descent parser for the subset of FBS's proprietary filter language that the
sandbox serves (the reference grammar is the ``sparkql`` Ruby gem). Grammar, loosest first::

    filter     := [ or_expr ]
    or_expr    := and_expr ( "Or" and_expr )*
    and_expr   := unary ( ( "And" | "Not" ) unary )*      # "A Not B" means "A And Not B"
    unary      := "Not" unary | "(" or_expr ")" | comparison
    comparison := Field ( "Eq" | "Ne" | "Gt" | "Ge" | "Lt" | "Le" | "Bt" ) literal ( "," literal )*

Literals: ``'text'`` (backslash escapes), ``123``, ``-1.5``, ``2024-06-01``,
``2024-06-01T12:00:00`` (optional fraction and ``Z`` / ``±HH:MM`` / ``±HHMM`` offset; no offset
means UTC), ``true`` / ``false``, ``NULL`` (also ``null`` / ``Null``).

Semantics (see :func:`flask_spark.sandbox.listings_data.compare`): keywords and field names are
case-sensitive, exactly as Spark spells them; string *values* compare case-insensitively;
``And`` binds tighter than ``Or`` (SQL convention); ``Eq`` / ``Ne`` with a list mean "any of" /
"none of"; ``Bt a,b`` is inclusive; integers widen to decimal fields; a date against a datetime
field means midnight UTC.

Errors are :class:`SparkQLError` (a :class:`~flask_spark.sandbox.listings_data.QueryError`):
1040 bad syntax (status ``Fatal``) or unknown field (``Dropped``), 1041 filter too long,
2001 value of the wrong type, 2002 wrong number of values for the operator.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from .listings_data import (
    ComparisonOp,
    FieldType,
    LiteralKind,
    LiteralTypeError,
    OrderBy,
    Predicate,
    QueryError,
    Schema,
    check_fields,
    coerce_literal,
    compare,
    parse_timestamp,
)

MAX_FILTER_LENGTH = 4096
"""Longer ``_filter`` values are refused with code 1041."""

MAX_EXPRESSIONS = 75
"""Most comparisons one filter may hold (the sparkql gem's limit)."""

MAX_VALUES = 200
"""Most values one list comparison may hold (the sparkql gem's limit)."""

_OPERATORS: dict[str, ComparisonOp | Literal["bt"]] = {
    "Eq": "eq",
    "Ne": "ne",
    "Gt": "gt",
    "Ge": "ge",
    "Lt": "lt",
    "Le": "le",
    "Bt": "bt",
}
_KEYWORDS = frozenset({*_OPERATORS, "And", "Or", "Not"})
_NULLS = frozenset({"NULL", "null", "Null"})

Status = Literal["Fatal", "Dropped"]


class SparkQLError(QueryError):
    """A ``_filter`` the sandbox refuses; carries the ``SparkQLErrors`` entry for the response."""

    def __init__(self, code: int, message: str, token: str, status: Status = "Fatal") -> None:
        super().__init__(
            code, message, details=[{"Token": token, "Status": status, "Message": message}]
        )
        self.token = token
        self.status = status


_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<decimal>-?\d+\.\d+)
  | (?P<integer>-?\d+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


_LITERAL_GROUPS: dict[str, LiteralKind] = {
    "datetime": "datetime",
    "date": "date",
    "decimal": "decimal",
    "integer": "integer",
    "string": "string",
}


@dataclass(frozen=True)
class _Token:
    kind: str  # "literal", "word", "keyword", "(", ")", ",", "end"
    text: str
    literal_kind: LiteralKind | None = None
    value: Any = None


def _literal(kind: LiteralKind, text: str) -> _Token:
    value: Any
    try:
        if kind == "datetime":
            value = parse_timestamp(text)
        elif kind == "date":
            value = date.fromisoformat(text)
        elif kind == "decimal":
            value = float(text)
        elif kind == "integer":
            value = int(text)
        else:  # string
            value = re.sub(r"\\(.)", r"\1", text[1:-1])
    except ValueError as exc:
        raise SparkQLError(2001, f"Invalid {kind} value {text}", text, "Dropped") from exc
    return _Token("literal", text, kind, value)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            fragment = text[position : position + 20]
            raise SparkQLError(1040, f"Unexpected input at position {position}", fragment)
        position = match.end()
        group, value = match.lastgroup, match.group()
        if group == "space":
            continue
        if group == "punct":
            tokens.append(_Token(value, value))
        elif group == "word":
            if value in _KEYWORDS:
                tokens.append(_Token("keyword", value))
            elif value in ("true", "false"):
                tokens.append(_Token("literal", value, "boolean", value == "true"))
            elif value in _NULLS:
                tokens.append(_Token("literal", value, "null", None))
            else:
                tokens.append(_Token("word", value))
        else:
            assert group is not None
            tokens.append(_literal(_LITERAL_GROUPS[group], value))
    tokens.append(_Token("end", ""))
    return tokens


class _Parser:
    """Recursive-descent parser over the token list; compiles straight into closures."""

    def __init__(self, tokens: list[_Token], schema: Schema) -> None:
        self.tokens = tokens
        self.index = 0
        self.schema = schema
        self.expressions = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def is_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "keyword" and token.text in words

    def fail(self, message: str, token: _Token | None = None) -> SparkQLError:
        token = token or self.peek()
        shown = token.text or "end of filter"
        return SparkQLError(1040, f"{message} (at {shown!r})", token.text)

    def parse(self) -> Predicate:
        if self.peek().kind == "end":
            return lambda fields: True
        predicate = self.or_expr()
        token = self.peek()
        if token.kind == "word" and token.text.capitalize() in ("And", "Or", "Not"):
            raise self.fail(f"Conjunctions are case-sensitive: use {token.text.capitalize()}")
        if token.kind != "end":
            raise self.fail("Expected And, Or, Not or the end of the filter")
        return predicate

    def or_expr(self) -> Predicate:
        terms = [self.and_expr()]
        while self.is_keyword("Or"):
            self.advance()
            terms.append(self.and_expr())
        if len(terms) == 1:
            return terms[0]
        return lambda fields: any(term(fields) for term in terms)

    def and_expr(self) -> Predicate:
        terms = [self.unary()]
        while self.is_keyword("And", "Not"):
            negate = self.advance().text == "Not"
            term = self.unary()
            terms.append(_negate(term) if negate else term)
        if len(terms) == 1:
            return terms[0]
        return lambda fields: all(term(fields) for term in terms)

    def unary(self) -> Predicate:
        token = self.peek()
        if self.is_keyword("Not"):
            self.advance()
            return _negate(self.unary())
        if token.kind == "(":
            self.advance()
            inner = self.or_expr()
            if self.peek().kind != ")":
                raise self.fail("Expected ')'")
            self.advance()
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        field_token = self.advance()
        if field_token.kind != "word":
            raise self.fail("Expected a field name", field_token)
        name = field_token.text
        operator = self.advance()
        if operator.kind == "word" and operator.text.capitalize() in _OPERATORS:
            raise self.fail(
                f"Operators are case-sensitive: use {operator.text.capitalize()}", operator
            )
        if operator.kind != "keyword" or operator.text not in _OPERATORS:
            raise self.fail(f"Expected an operator (Eq Ne Gt Ge Lt Le Bt) after {name}", operator)
        values = [self.literal()]
        while self.peek().kind == ",":
            self.advance()
            values.append(self.literal())
        self.expressions += 1
        if self.expressions > MAX_EXPRESSIONS:
            raise self.fail(f"A filter may hold at most {MAX_EXPRESSIONS} expressions", field_token)
        if name not in self.schema:
            raise SparkQLError(1040, f"Unknown field {name}", name, "Dropped")
        return _compile(name, self.schema[name], _OPERATORS[operator.text], operator.text, values)

    def literal(self) -> _Token:
        token = self.advance()
        if token.kind != "literal":
            raise self.fail("Expected a value", token)
        return token


def _negate(predicate: Predicate) -> Predicate:
    return lambda fields: not predicate(fields)


def _compile(
    name: str,
    ftype: FieldType,
    op: ComparisonOp | Literal["bt"],
    op_text: str,
    tokens: list[_Token],
) -> Predicate:
    """Type-check a comparison's values against the field and build its predicate."""
    shown = ",".join(token.text for token in tokens)
    if len(tokens) > MAX_VALUES:
        raise SparkQLError(2002, f"{name}: at most {MAX_VALUES} values", shown, "Dropped")
    if op == "bt" and len(tokens) != 2:
        raise SparkQLError(2002, f"{name} Bt needs exactly two values", shown, "Dropped")
    if op in ("gt", "ge", "lt", "le") and len(tokens) != 1:
        raise SparkQLError(2002, f"{name} {op_text} takes a single value", shown, "Dropped")
    values: list[Any] = []
    for token in tokens:
        assert token.literal_kind is not None
        if token.literal_kind == "null" and op not in ("eq", "ne"):
            raise SparkQLError(
                2001, f"{name}: NULL is only valid with Eq or Ne", token.text, "Dropped"
            )
        try:
            values.append(coerce_literal(token.literal_kind, token.value, ftype))
        except LiteralTypeError as exc:
            raise SparkQLError(2001, f"{name}: {exc}", token.text, "Dropped") from exc

    if op == "bt":
        low, high = values
        return lambda fields: (
            compare("ge", fields.get(name), low, ftype)
            and compare("le", fields.get(name), high, ftype)
        )
    if op == "ne":
        return lambda fields: all(compare("ne", fields.get(name), v, ftype) for v in values)
    return lambda fields: any(compare(op, fields.get(name), v, ftype) for v in values)


def parse_filter(text: str | None, schema: Schema) -> Predicate:
    """Compile a SparkQL ``_filter`` into a predicate over a record's flat field mapping.

    Empty or missing filters match everything. Raises :class:`SparkQLError`.
    """
    if text is None:
        return lambda fields: True
    if len(text) > MAX_FILTER_LENGTH:
        raise SparkQLError(
            1041, f"_filter is longer than {MAX_FILTER_LENGTH} characters", text[:20], "Fatal"
        )
    return _Parser(_tokenize(text), schema).parse()


def parse_orderby(text: str | None, schema: Schema) -> OrderBy:
    """Parse ``_orderby`` (``-ListPrice,+BathsTotal``; no sign means ascending) → 1053 on error.

    A ``+`` that arrived unencoded in a query string decodes to a space, so leading spaces
    count as ``+``.
    """
    if text is None or not text.strip():
        return []
    order: list[tuple[str, bool]] = []
    for item in text.split(","):
        name = item.strip()
        descending = name.startswith("-")
        name = name.lstrip("+-").strip()
        order.append((name, descending))
    check_fields((name for name, _ in order), schema, "_orderby")
    return order


def parse_select(text: str | None, known: Collection[str]) -> tuple[str, ...] | None:
    """Parse ``_select`` (comma-separated names) → ``None`` for "all fields"; 1053 on error."""
    if text is None or not text.strip():
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    return check_fields(names, known, "_select")
