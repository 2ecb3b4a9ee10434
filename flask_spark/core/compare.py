"""Constant-time comparison of a secret with what a request offers, whatever it offers.

:func:`secrets.compare_digest` raises :class:`TypeError` on a ``str`` with non-ASCII characters,
so comparing a request's value with it directly lets anyone turn a refusal into a 500.
"""

from __future__ import annotations

import secrets
from typing import Any


def same_secret(expected: Any, given: Any) -> bool:
    """True when ``given`` equals the secret ``expected``, both non-empty text; compared in
    constant time as UTF-8 bytes, so that no value a client sends can raise."""
    if not isinstance(expected, str) or not isinstance(given, str) or not expected or not given:
        return False
    return secrets.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )
