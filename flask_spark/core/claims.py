"""Which id_token claims a session can keep: plain JSON that survives the session store intact.

A provider signs what it likes. A value the session store cannot write back and read again
unchanged (an integer wider than 64 bits, NaN, a lone surrogate, nesting deeper than any real
claim, a huge payload) must refuse the sign-in cleanly before anything is written, not fail
when the session is saved after the tokens were stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .errors import LoginError

#: Nesting of claim values kept at most (``address`` is two deep; ``groups`` lists one).
MAX_DEPTH = 16
#: Size of the kept claims, serialised, at most (bytes): they are read on every request.
MAX_BYTES = 32 * 1024
_INT64 = (-(2**63), 2**63 - 1)


def _refuse(why: str) -> LoginError:
    return LoginError(
        f"The sign-in returned user details this app cannot store ({why}); nothing was saved. "
        "Please contact the site's administrator.",
        reason="claims_unstorable",
    )


def _check_value(value: Any) -> None:
    """Walk ``value`` without recursion; LoginError on the first thing JSON cannot keep."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _refuse(f"nested deeper than {MAX_DEPTH} levels")
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not _INT64[0] <= item <= _INT64[1]:
                raise _refuse("an integer wider than 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _refuse("a number that is not finite")
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise _refuse("a key that is not text")
                _check_text(key)
                stack.append((child, depth + 1))
        else:
            raise _refuse(f"a value of type {type(item).__name__}")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse("text that is not valid Unicode") from None


def storable_claims(
    claims: Mapping[str, Any], dumps: Callable[[Any], str | bytes]
) -> dict[str, Any]:
    """``claims`` as a dict, once checked to be plain JSON within bounds that ``dumps`` (the
    session store's serializer) writes in at most :data:`MAX_BYTES`; LoginError otherwise."""
    kept = dict(claims)
    _check_value(kept)
    try:
        size = len(dumps(kept))
    except (TypeError, ValueError, RecursionError):
        raise _refuse("values the session store cannot serialise") from None
    if size > MAX_BYTES:
        raise _refuse(f"{size} bytes, more than {MAX_BYTES}")
    return kept
