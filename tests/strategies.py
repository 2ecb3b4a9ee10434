"""Hypothesis strategies for what a browser, an HTTP client or a provider can really send.

Text that travels over HTTP (a query string, a form field, a header, a cookie, a path, a JSON
body, a JWT claim) is UTF-8 on the wire, and a lone surrogate (U+D800 to U+DFFF) has no UTF-8
form: no client can send one. ``st.characters`` draws them as soon as it is given a bound
(``min_codepoint=0x80``, say). A strategy that draws one fails in the test's own client or
signer, not in flask-spark, and only when Hypothesis happens to draw it. Every test module
draws its text from here, never from ``st.text`` or ``st.characters`` directly
(``test_strategies.py`` checks both).
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st


def wire_chars(**kwargs: Any) -> st.SearchStrategy[str]:
    """Characters that UTF-8 can encode (every code point but the surrogates), narrowed by
    ``st.characters``'s own arguments."""
    return st.characters(codec="utf-8", **kwargs)


def wire_text(
    alphabet: st.SearchStrategy[str] | str | None = None,
    *,
    min_size: int = 0,
    max_size: int | None = None,
) -> st.SearchStrategy[str]:
    """Text that can travel over HTTP: drawn from ``alphabet`` (any UTF-8-encodable character
    by default; a string names the characters allowed)."""
    return st.text(
        wire_chars() if alphabet is None else alphabet, min_size=min_size, max_size=max_size
    )


#: Non-ASCII text a cross-site form or a script can put in a field.
NON_ASCII = wire_chars(min_codepoint=0x80)
#: What a header value can carry to the app: Latin-1, less DEL (werkzeug reads headers so).
HEADER_CHARS = wire_chars(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")


def examples(n: int) -> int:
    """``n`` examples under the default profile (100), scaled with the loaded profile's
    ``max_examples``: a test that asks for its own count still follows ``mutation``'s 10."""
    return max(1, n * settings.default.max_examples // 100)
