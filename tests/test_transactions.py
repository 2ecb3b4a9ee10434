"""Sign-in transactions: single use, bound to the browser, capped, and expired one by one.

The store's public methods on a real Redis (issue 23): a callback gets a transaction only
with the state it was started with, from the browser that started it, once, and within the
TTL of that transaction itself (the list's own TTL is renewed by every new sign-in).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import redis

from flask_spark.core.transactions import (
    MAX_PENDING,
    LoginTransaction,
    TransactionStore,
    same_secret,
)

from .helpers import node_id

TTL = 600


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> TransactionStore:
    return TransactionStore(redis_client, key_prefix, TTL)


def begin(binding: str = "browser-1", **changes: object) -> LoginTransaction:
    txn = LoginTransaction.begin(
        next_url="/dashboard", binding=binding, redirect_uri="http://localhost/spark/callback"
    )
    return replace(txn, **changes)  # type: ignore[arg-type]


def test_a_transaction_is_taken_once_with_its_own_state(store: TransactionStore) -> None:
    txn = begin()
    store.save(txn)
    assert store.pending("browser-1") == 1
    assert store.pop("browser-1", txn.state) == txn
    assert store.pop("browser-1", txn.state) is None  # a replayed callback finds nothing
    assert store.pending("browser-1") == 0


def test_a_fresh_transaction_has_unguessable_values_and_a_pkce_verifier() -> None:
    one, two = begin(), begin()
    assert len(one.state) == len(one.nonce) == 43
    assert len(one.code_verifier) == 64  # RFC 7636: 43 to 128 characters
    assert {one.state, one.nonce, one.code_verifier}.isdisjoint(
        {two.state, two.nonce, two.code_verifier}
    )
    assert one.state != one.nonce
    assert abs(one.started - time.time()) < 60
    assert (one.next_url, one.binding) == ("/dashboard", "browser-1")
    assert one.redirect_uri == "http://localhost/spark/callback"


def test_an_expired_transaction_is_refused_and_removed(store: TransactionStore) -> None:
    """The list's TTL is renewed by every new sign-in: the transaction's own start time is
    what expires an old one."""
    old = begin(started=time.time() - TTL - 1)
    new = begin()
    store.save(old)
    store.save(new)  # renews the list's TTL
    assert store.pop("browser-1", old.state) is None
    assert store.pending("browser-1") == 1  # used up all the same
    assert store.pop("browser-1", new.state) == new
    nearly = begin(started=time.time() - TTL + 30)
    store.save(nearly)
    assert store.pop("browser-1", nearly.state) == nearly


def test_a_transaction_is_good_for_its_ttl_to_the_second(
    store: TransactionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    last, late = begin(started=1_800_000_000.0), begin(started=1_800_000_000.0)
    store.save(last)
    store.save(late)
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0 + TTL)
    assert store.pop("browser-1", last.state) == last
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0 + TTL + 0.001)
    assert store.pop("browser-1", late.state) is None


@pytest.mark.parametrize("offered", ["", "wrong", "é", "\ud800", None, 43, ["x"]], ids=node_id)
def test_any_other_state_gets_nothing_and_takes_nothing(
    store: TransactionStore, offered: object
) -> None:
    txn = begin()
    store.save(txn)
    assert store.pop("browser-1", offered) is None  # type: ignore[arg-type]
    assert store.pop("browser-1", txn.state[:-1]) is None
    assert store.pending("browser-1") == 1
    assert store.pop("browser-1", txn.state) == txn


@pytest.mark.parametrize(
    ("expected", "given", "same"),
    [
        ("s-3cr3t", "s-3cr3t", True),
        ("caf\u00e9", "caf\u00e9", True),  # non-ASCII text: compared as UTF-8, not a 500
        ("\ud800x", "\ud800x", True),  # a lone surrogate (a query string can carry one)
        ("s-3cr3t", "s-3cr3u", False),
        ("caf\u00e9", "cafe", False),
        ("s-3cr3t", "", False),
        ("", "", False),  # an empty secret is no secret: never matched, not even by ""
        (None, None, False),
        ("s-3cr3t", None, False),
        (None, "s-3cr3t", False),
        (b"s-3cr3t", b"s-3cr3t", False),  # text only
        ("s-3cr3t", b"s-3cr3t", False),
    ],
    ids=node_id,
)
def test_the_state_and_csrf_comparison(expected: object, given: object, same: bool) -> None:
    """``same_secret`` (state, logout state, CSRF token, ``iss``): equal non-empty text only."""
    assert same_secret(expected, given) is same


def test_a_transaction_belongs_to_the_browser_that_started_it(store: TransactionStore) -> None:
    txn = begin("browser-1")
    store.save(txn)
    assert store.pop("browser-2", txn.state) is None
    assert store.pending("browser-1") == 1
    assert store.pop("browser-1", txn.state) == txn


def test_several_tabs_each_get_their_own(store: TransactionStore) -> None:
    tabs = [begin() for _ in range(3)]
    for txn in tabs:
        store.save(txn)
    for txn in reversed(tabs[1:]):
        assert store.pop("browser-1", txn.state) == txn
    assert store.pop("browser-1", tabs[0].state) == tabs[0]


def test_a_browser_keeps_at_most_max_pending_the_oldest_dropped(
    store: TransactionStore,
) -> None:
    started = [begin() for _ in range(MAX_PENDING + 1)]
    for txn in started:
        store.save(txn)
    assert store.pending("browser-1") == MAX_PENDING
    assert store.pop("browser-1", started[0].state) is None
    for txn in started[1:]:
        assert store.pop("browser-1", txn.state) == txn


def key(store: TransactionStore, binding: str) -> str:
    """The browser's list, as the module documents it: ``<prefix>txn:{<binding>}``."""
    return f"{store.prefix}txn:{{{binding}}}"


def test_the_list_expires_with_the_ttl(store: TransactionStore, redis_client: redis.Redis) -> None:
    store.save(begin())
    assert 0 < redis_client.ttl(key(store, "browser-1")) <= TTL
    short = TransactionStore(redis_client, store.prefix, 0)
    short.save(begin("browser-3"))
    assert 0 < redis_client.ttl(key(short, "browser-3")) <= 1


def test_an_unreadable_entry_is_skipped(store: TransactionStore, redis_client: redis.Redis) -> None:
    txn = begin()
    store.save(txn)
    redis_client.lpush(key(store, "browser-1"), b"not json", json.dumps({"state": txn.state}))
    assert store.pop("browser-1", txn.state) == txn
