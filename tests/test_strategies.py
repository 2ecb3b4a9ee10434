"""The suite's Hypothesis strategies draw only what can travel over HTTP (issue 24)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from .strategies import HEADER_CHARS, NON_ASCII, wire_text

HERE = Path(__file__).parent
SEARCH = settings(  # pure generation: no deadline or speed check on a loaded -n 8 run
    max_examples=3000, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)


def has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_plain_text_strategies_do_draw_lone_surrogates() -> None:
    """The search below can find one: ``st.characters`` given any bound draws them (issue 24's
    ``st.characters(min_codepoint=0x80)`` did, in a query string)."""
    found = find(st.text(st.characters(min_codepoint=0x80)), has_surrogate, settings=SEARCH)
    with pytest.raises(UnicodeEncodeError):
        found.encode("utf-8")


@pytest.mark.parametrize(
    "strategy", [wire_text(), wire_text(NON_ASCII), wire_text(HEADER_CHARS)], ids=repr
)
def test_wire_text_never_draws_a_lone_surrogate(strategy: st.SearchStrategy[str]) -> None:
    with pytest.raises(NoSuchExample):
        find(strategy, has_surrogate, settings=SEARCH)


def test_no_test_module_draws_text_of_its_own() -> None:
    """``st.text`` and ``st.characters`` draw surrogates: test modules use ``tests.strategies``."""
    direct = re.compile(r"\b(?:st|strategies)\.(?:text|characters)\(")
    own = {"strategies.py", Path(__file__).name}
    offenders = [
        path.name
        for path in HERE.rglob("*.py")
        if path.name not in own and direct.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
