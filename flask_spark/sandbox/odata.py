"""OData query options for the sandbox's RESO Web API: ``$filter``, ``$orderby``, ``$select``.

``$filter`` is compiled by a small recursive-descent parser into a predicate over a flat record.
Grammar, loosest first (keywords lower case, as OData spells them)::

    filter     := or_expr
    or_expr    := and_expr ( "or" and_expr )*
    and_expr   := unary ( "and" unary )*
    unary      := "not" unary | "(" or_expr ")" | function | comparison
    function   := ( "contains" | "startswith" | "endswith" ) "(" Field "," string ")"
    comparison := Field ( "eq" | "ne" | "gt" | "ge" | "lt" | "le" ) literal
                | Field "in" "(" literal ( "," literal )* ")"

Literals: ``'text'`` (``''`` escapes a quote), enum literals ``Namespace.Type'Value'`` (treated
as their string value), ``12``, ``-1.5``, ``1e3``, ``2024-06-01``, ``2024-06-01T12:00:00Z``
(offset optional, none means UTC), ``true``, ``false``, ``null``.

Semantics match the sandbox's SparkQL (:func:`flask_spark.sandbox.listings_data.compare`): field
names and keywords are case-sensitive, string values compare case-insensitively (the functions
too), ``null`` only with ``eq`` / ``ne``. Errors are :class:`ODataQueryError` (a
:class:`~flask_spark.sandbox.listings_data.QueryError`): 1040 syntax or unknown field, 2001 a value
of the wrong type; ``$orderby`` / ``$select`` problems are 1053.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

from .listings_data import (
    ComparisonOp,
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
"""Longer ``$filter`` values are refused (code 1041)."""

_COMPARISONS: dict[str, ComparisonOp] = {
    "eq": "eq",
    "ne": "ne",
    "gt": "gt",
    "ge": "ge",
    "lt": "lt",
    "le": "le",
}
_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda value, part: part in value,
    "startswith": lambda value, part: value.startswith(part),
    "endswith": lambda value, part: value.endswith(part),
}
_KEYWORDS = frozenset({*_COMPARISONS, "and", "or", "not", "in"})


class ODataQueryError(QueryError):
    """A ``$filter`` the sandbox refuses (rendered as an OData ``error`` object)."""


_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<decimal>-?\d+(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+))
  | (?P<integer>-?\d+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<enum>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+'(?:[^']|'')*')
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "literal", "word", "keyword", "(", ")", ",", "end"
    text: str
    literal_kind: LiteralKind | None = None
    value: Any = None


def _unquote(quoted: str) -> str:
    return quoted[1:-1].replace("''", "'")


def _literal(kind: str, text: str) -> _Token:
    try:
        if kind == "datetime":
            return _Token("literal", text, "datetime", parse_timestamp(text))
        if kind == "date":
            return _Token("literal", text, "date", date.fromisoformat(text))
    except ValueError as exc:
        raise ODataQueryError(2001, f"Invalid {kind} literal {text}") from exc
    if kind == "decimal":
        return _Token("literal", text, "decimal", float(text))
    if kind == "integer":
        return _Token("literal", text, "integer", int(text))
    if kind == "enum":
        return _Token("literal", text, "string", _unquote(text[text.index("'") :]))
    return _Token("literal", text, "string", _unquote(text))


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            raise ODataQueryError(
                1040, f"$filter: unexpected input at position {position}: {text[position:][:20]!r}"
            )
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
            elif value == "null":
                tokens.append(_Token("literal", value, "null", None))
            else:
                tokens.append(_Token("word", value))
        else:
            assert group is not None
            tokens.append(_literal(group, value))
    tokens.append(_Token("end", ""))
    return tokens


class _Parser:
    """Recursive-descent parser over the token list; compiles straight into closures."""

    def __init__(self, tokens: list[_Token], schema: Schema) -> None:
        self.tokens = tokens
        self.index = 0
        self.schema = schema

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.advance()
        if token.kind != kind:
            raise self.fail(f"expected {what}", token)
        return token

    def fail(self, message: str, token: _Token | None = None) -> ODataQueryError:
        token = token or self.peek()
        shown = repr(token.text) if token.text else "the end of the filter"
        return ODataQueryError(1040, f"$filter: {message} at {shown}")

    def is_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "keyword" and token.text == word

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek().kind != "end":
            raise self.fail("expected 'and', 'or' or the end of the filter")
        return predicate

    def or_expr(self) -> Predicate:
        terms = [self.and_expr()]
        while self.is_keyword("or"):
            self.advance()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else lambda rec: any(term(rec) for term in terms)

    def and_expr(self) -> Predicate:
        terms = [self.unary()]
        while self.is_keyword("and"):
            self.advance()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else lambda rec: all(term(rec) for term in terms)

    def unary(self) -> Predicate:
        token = self.peek()
        if self.is_keyword("not"):
            self.advance()
            inner = self.unary()
            return lambda rec: not inner(rec)
        if token.kind == "(":
            self.advance()
            predicate = self.or_expr()
            self.expect(")", "')'")
            return predicate
        if token.kind == "word" and token.text in _FUNCTIONS:
            return self.function()
        return self.comparison()

    def field(self) -> str:
        token = self.expect("word", "a field name")
        if token.text not in self.schema:
            raise ODataQueryError(1040, f"$filter: unknown field {token.text}")
        return token.text

    def function(self) -> Predicate:
        test = _FUNCTIONS[self.advance().text]
        self.expect("(", "'('")
        name = self.field()
        self.expect(",", "','")
        token = self.expect("literal", "a string")
        self.expect(")", "')'")
        if self.schema[name] != "string" or token.literal_kind != "string":
            raise ODataQueryError(2001, "$filter: string functions need a string field and value")
        part = str(token.value).casefold()

        def predicate(rec: Any) -> bool:
            value = rec.get(name)
            return value is not None and test(str(value).casefold(), part)

        return predicate

    def comparison(self) -> Predicate:
        name = self.field()
        ftype = self.schema[name]
        operator = self.advance()
        if operator.kind != "keyword" or operator.text not in (*_COMPARISONS, "in"):
            raise self.fail(f"expected a comparison operator after {name}", operator)
        if operator.text == "in":
            self.expect("(", "'('")
            tokens = [self.expect("literal", "a value")]
            while self.peek().kind == ",":
                self.advance()
                tokens.append(self.expect("literal", "a value"))
            self.expect(")", "')'")
            values = [self.coerce(name, token, "eq") for token in tokens]
            return lambda rec: any(compare("eq", rec.get(name), v, ftype) for v in values)
        op = _COMPARISONS[operator.text]
        value = self.coerce(name, self.expect("literal", "a value"), op)
        return lambda rec: compare(op, rec.get(name), value, ftype)

    def coerce(self, name: str, token: _Token, op: ComparisonOp) -> Any:
        assert token.literal_kind is not None
        if token.literal_kind == "null" and op not in ("eq", "ne"):
            raise ODataQueryError(2001, f"$filter: null is only valid with eq or ne ({name})")
        try:
            return coerce_literal(token.literal_kind, token.value, self.schema[name])
        except LiteralTypeError as exc:
            raise ODataQueryError(2001, f"$filter: {name}: {exc}") from exc


def parse_filter(text: str | None, schema: Schema) -> Predicate:
    """Compile an OData ``$filter`` into a predicate over a flat record; empty matches all."""
    if text is None or not text.strip():
        return lambda rec: True
    if len(text) > MAX_FILTER_LENGTH:
        raise ODataQueryError(1041, f"$filter is longer than {MAX_FILTER_LENGTH} characters")
    return _Parser(_tokenize(text), schema).parse()


def parse_orderby(text: str | None, schema: Schema) -> OrderBy:
    """Parse ``$orderby`` (``ListPrice desc, City asc``; default ascending) → 1053 on error."""
    if text is None or not text.strip():
        return []
    order: list[tuple[str, bool]] = []
    for item in text.split(","):
        parts = item.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] not in ("asc", "desc")):
            raise QueryError(1053, f"$orderby: cannot parse {item.strip()!r}")
        order.append((parts[0], len(parts) == 2 and parts[1] == "desc"))
    check_fields((name for name, _ in order), schema, "$orderby")
    return order


def parse_select(text: str | None, known: Collection[str]) -> tuple[str, ...] | None:
    """Parse ``$select`` → ``None`` for all fields (absent or ``*``); 1053 for unknown fields."""
    if text is None or not text.strip() or text.strip() == "*":
        return None
    return check_fields(
        [name.strip() for name in text.split(",") if name.strip()], known, "$select"
    )
