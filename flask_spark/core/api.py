"""Clients for the Spark API and the RESO Web API, free of Flask: typed errors, one refresh on a
refused token; ``gather``, ``a*`` and ``paginate`` run calls on threads, in the caller's context."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from math import ceil
from typing import Any, Protocol

import requests

from .errors import RateLimited, SparkAPIError, UnexpectedResponse, api_error_class, numeric_code
from .retry import retry_after_seconds
from .urls import APIBase

#: API calls one client (one request) has in flight at most (the pool holds 32 per host).
CONCURRENCY = 4

Params = Mapping[str, Any] | None


class TokenSource(Protocol):
    """Where a client gets its bearer token; called under the client's lock."""

    def access_token(self) -> str:
        """A token believed valid (refreshed proactively when close to expiry)."""

    def refresh(self, rejected: str) -> str | None:
        """A new token after the API refused ``rejected``; None when it cannot be refreshed."""


@dataclass
class StaticTokens:
    """A fixed token (e.g. to delete it at the API); a 1020 answer is final."""

    token: str = field(repr=False)

    def access_token(self) -> str:
        return self.token

    def refresh(self, rejected: str) -> str | None:
        return None


@dataclass
class SparkResponse:
    """A successful Spark API answer: ``results``, ``pagination`` and the ``raw`` body."""

    raw: dict[str, Any]
    status: int
    results: list[Any] = field(default_factory=list)
    pagination: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def first(self) -> Any:
        return self.results[0] if self.results else None


@dataclass
class ResoResponse:
    """A successful RESO Web API answer: ``value`` (a list, or one entity), count and next link."""

    raw: dict[str, Any]
    status: int
    value: Any = None
    count: int | None = None
    next_link: str | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.value if isinstance(self.value, list) else [self.value])

    def __len__(self) -> int:
        return len(self.value) if isinstance(self.value, list) else 1


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the decoder goes
        return None


def _list(value: Any) -> list[Any] | None:
    return value if isinstance(value, list) else None


def error_from_response(response: requests.Response, service: str) -> SparkAPIError:
    """The typed error for a non-2xx answer, from the D envelope, an OData error or the status."""
    body = _json(response)
    status = response.status_code
    errors = sparkql = None
    if isinstance(body, dict) and isinstance(body.get("D"), dict):
        envelope = body["D"]
        code, message = envelope.get("Code"), envelope.get("Message")
        errors, sparkql = _list(envelope.get("Errors")), _list(envelope.get("SparkQLErrors"))
    elif isinstance(body, dict) and isinstance(body.get("error"), dict):
        odata = body["error"]
        code, message, errors = odata.get("code"), odata.get("message"), _list(odata.get("details"))
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        code, message = body["error"], body.get("error_description") or body["error"]
    else:
        return UnexpectedResponse(
            f"The {service} answered HTTP {status} with a body that is not in its documented "
            "format.",
            status=status if status >= 400 else 502,
            body=response.text[:200],
        )
    number = numeric_code(code)  # a code from an untrusted body: a number, a string or None
    code = number if number is not None else code if isinstance(code, str) else None
    text = str(message or "") or f"The {service} reported a failure (HTTP {status})."
    cls = RateLimited if code == 1550 or status == 429 else api_error_class(status, code)
    error = cls(text, status=status, code=code, errors=errors, sparkql_errors=sparkql, body=body)
    if isinstance(error, RateLimited):
        error.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    return error


class BaseClient:
    """What both APIs share: headers, token, refresh, concurrency cap; ``http`` is pooled."""

    service = "API"

    def __init__(
        self,
        *,
        base_url: str,
        user_agent: str,
        tokens: TokenSource,
        http: requests.Session,
        timeout: float = 10.0,
    ) -> None:
        self.base = APIBase(base_url)
        self.tokens = tokens
        self.http = http
        self.timeout = timeout
        # Shared with the RESO client of the same SparkAPI: one token, one refresh, one limit.
        self._token_lock = threading.RLock()
        self._slots = threading.BoundedSemaphore(CONCURRENCY)
        self._headers = {
            **getattr(http, "headers", {}),
            "Accept": "application/json",
            "X-SparkApi-User-Agent": user_agent,
        }

    def request(
        self, method: str, path: str, *, params: Params = None, json: Any = None
    ) -> requests.Response:
        """Send one call (refreshing once on a refused token); the raw 2xx response. ``UnsafeURL``,
        before any request, for a ``path`` that could take the token elsewhere."""
        url = self.base.resolve(path)
        with self._token_lock:
            token = self.tokens.access_token()
        response = self._send(method, url, token, params, json)
        if response.status_code == 401 and _token_refused(response):
            with self._token_lock:  # concurrent calls that met the same expiry wait for one
                fresh = self.tokens.refresh(token)
            if fresh is not None:
                response = self._send(method, url, fresh, params, json)
        if response.status_code >= 400:
            raise error_from_response(response, self.service)
        return response

    def _send(
        self, method: str, url: str, token: str, params: Params, body: Any
    ) -> requests.Response:
        headers = {**self._headers, "Authorization": f"Bearer {token}"}
        # Not ``Session.request``: settings are merged once, in ``__init__`` and ``pooled_session``.
        prepared = requests.Request(method, url, headers, json=body, params=params).prepare()
        try:
            with self._slots:
                return self.http.send(prepared, timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            raise SparkAPIError(
                f"The {self.service} did not answer within {self.timeout:g}s.", status=504
            ) from None
        except requests.RequestException as exc:
            raise SparkAPIError(
                f"The {self.service} could not be reached at {self.base.url} "
                f"({type(exc).__name__})."
            ) from None

    def gather(self, *calls: Callable[[], Any]) -> list[Any]:
        """Run ``calls`` (e.g. ``lambda: spark_api.get("my/account")``) at once; their results
        in order, or the first error in that order once all have ended."""
        with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="flask-spark-api") as pool:
            futures = [pool.submit(copy_context().run, call) for call in calls]
        return [future.result() for future in futures]


def _ahead(calls: Iterable[Callable[[], Any]]) -> Generator[Any, None, None]:
    """The results of ``calls`` in order, at most :data:`CONCURRENCY` of them in flight."""
    with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="flask-spark-api") as pool:
        pending: deque[Future[Any]] = deque()
        for call in calls:
            pending.append(pool.submit(copy_context().run, call))
            if len(pending) == CONCURRENCY:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _token_refused(response: requests.Response) -> bool:
    """A 401 a refresh may cure: code 1020, an OData error or ``invalid_token`` (also a revoked
    token: its refresh then fails and ends the session)."""
    body = _json(response)
    if isinstance(body, dict):
        envelope = body.get("D")
        if isinstance(envelope, dict) and str(envelope.get("Code")) == "1020":
            return True
        if isinstance(body.get("error"), dict):  # OData: {"error": {"code", "message"}}
            return True
    return "invalid_token" in response.headers.get("WWW-Authenticate", "")


class SparkAPI(BaseClient):
    """The Spark API (``https://sparkapi.com/v1/``) on behalf of one signed-in user."""

    service = "Spark API"

    def __init__(self, *, reso: ResoAPI | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._reso = reso
        if reso is not None:
            reso._token_lock, reso._slots = self._token_lock, self._slots

    @property
    def reso(self) -> ResoAPI:
        """The RESO Web API with the same token."""
        if self._reso is None:
            raise SparkAPIError("No RESO Web API base URL is configured.")
        return self._reso

    def call(
        self, method: str, path: str, *, params: Params = None, json: Any = None
    ) -> SparkResponse:
        """One Spark API call, parsed; a write's body wrapped as Spark wants, ``{"D": {...}}``."""
        if json is not None and not (isinstance(json, dict) and set(json) == {"D"}):
            json = {"D": json}
        return parse_spark(self.request(method, path, params=params, json=json))

    def get(self, path: str, params: Params = None) -> SparkResponse:
        """GET ``path`` (e.g. ``"my/account"``, ``"listings"``)."""
        return self.call("GET", path, params=params)

    def post(self, path: str, json: Any = None, params: Params = None) -> SparkResponse:
        """POST ``json`` (wrapped in ``D``) to ``path``; never retried automatically."""
        return self.call("POST", path, params=params, json=json)

    def put(self, path: str, json: Any = None, params: Params = None) -> SparkResponse:
        """PUT ``json`` (wrapped in ``D``) to ``path``; never retried automatically."""
        return self.call("PUT", path, params=params, json=json)

    def delete(self, path: str, params: Params = None) -> SparkResponse:
        """DELETE ``path``; never retried automatically."""
        return self.call("DELETE", path, params=params)

    async def aget(self, path: str, params: Params = None) -> SparkResponse:
        """:meth:`get` to await, on a worker thread: several run at once under ``gather``."""
        return await asyncio.to_thread(self.call, "GET", path, params=params)

    async def apost(self, path: str, json: Any = None, params: Params = None) -> SparkResponse:
        """:meth:`post` to await."""
        return await asyncio.to_thread(self.call, "POST", path, params=params, json=json)

    async def aput(self, path: str, json: Any = None, params: Params = None) -> SparkResponse:
        """:meth:`put` to await."""
        return await asyncio.to_thread(self.call, "PUT", path, params=params, json=json)

    async def adelete(self, path: str, params: Params = None) -> SparkResponse:
        """:meth:`delete` to await."""
        return await asyncio.to_thread(self.call, "DELETE", path, params=params)

    def paginate(
        self, path: str, params: Params = None, *, max_records: int | None = None
    ) -> Iterator[Any]:
        """Every record of a collection, in order (``_limit`` 25 unless given). ``_skiptoken`` in
        ``params`` (``""`` to start) walks the tokens the answers carry; ``_skip`` walks offsets;
        otherwise ``_page`` walks page numbers, :data:`CONCURRENCY` at a time: those
        ``max_records`` needs at once, the rest once the first answer gives ``TotalPages``."""
        query = {"_limit": 25, **(params or {})}
        style = "skiptoken" if "_skiptoken" in query else "skip" if "_skip" in query else "page"
        if style != "skiptoken":
            query["_pagination"] = 1
        if style == "page":
            query.setdefault("_page", 1)
            pages = self._numbered(path, query, max_records)
        else:
            pages = self._pages(path, query, style)
        try:
            yield from islice(chain.from_iterable(page.results for page in pages), max_records)
        finally:
            pages.close()  # stops the pages being fetched ahead

    def _pages(
        self, path: str, query: dict[str, Any], style: str
    ) -> Generator[SparkResponse, None, None]:
        while True:  # ``paginate`` stops asking once it has ``max_records``
            page = self.get(path, params=query)
            yield page
            info = page.pagination or {}
            if not page.results:
                return
            if style == "skiptoken":
                token = info.get("NextSkipToken") or info.get("SkipToken")
                if not token or token == query.get("_skiptoken"):
                    return
                query["_skiptoken"] = token
                continue
            start = _number(info, "CurrentOffset", query["_skip"])
            total = numeric_code(info.get("TotalRows"))
            query["_skip"] = start + len(page.results)
            if total is not None and query["_skip"] >= total:
                return

    def _numbered(
        self, path: str, query: dict[str, Any], max_records: int | None
    ) -> Generator[SparkResponse, None, None]:
        asked = numeric_code(query["_page"]) or 1
        limit = numeric_code(query["_limit"])
        numbers = range(asked, asked + (ceil(max_records / limit) if max_records and limit else 1))
        seen = 0
        while numbers:
            pages = _ahead(partial(self.get, path, {**query, "_page": n}) for n in numbers)
            try:
                for number, page in zip(numbers, pages, strict=True):
                    yield page
                    seen += len(page.results)
                    info = page.pagination or {}
                    current = _number(info, "CurrentPage", number)
                    last = _number(info, "TotalPages", current)
                    if not page.results or current >= last:  # ``paginate`` stops at ``max_records``
                        return
            finally:
                pages.close()
            if max_records is not None:  # no page past the last one needed
                last = min(last, current + ceil((max_records - seen) / len(page.results)))
            numbers = range(current + 1, last + 1)


def _number(info: Mapping[str, Any], name: str, default: Any) -> int:
    """A pagination value (``default`` when absent); one that is not a number is the API's fault."""
    given = info.get(name)
    value = numeric_code(default if given is None else given)
    if value is None:
        raise UnexpectedResponse(
            f"The Spark API answered an unreadable {name} ({str(given)[:20]!r}).",
            body=dict(info),
        )
    return value


def parse_spark(response: requests.Response) -> SparkResponse:
    """Parse a 2xx Spark answer; a body without the ``D`` envelope is an error, not a KeyError."""
    body = _json(response)
    envelope = body.get("D") if isinstance(body, dict) else None
    if not isinstance(envelope, dict):
        raise UnexpectedResponse(
            f"The Spark API answered HTTP {response.status_code} without its D envelope.",
            body=body if body is not None else response.text[:200],
        )
    if envelope.get("Success") is False:
        raise error_from_response(response, "Spark API")
    pagination = envelope.get("Pagination")
    return SparkResponse(
        raw=body,
        status=response.status_code,
        results=_list(envelope.get("Results")) or [],
        pagination=pagination if isinstance(pagination, dict) else None,
    )


class ResoAPI(BaseClient):
    """The RESO Web API (``https://sparkapi.com/Reso/OData/``) with the user's token."""

    service = "RESO Web API"

    def get(self, path: str, params: Params = None) -> ResoResponse:
        """GET a resource (``"Property"``, ``"Property('key')"``, ``"Member"``...)."""
        return parse_reso(self.request("GET", path, params=params))

    async def aget(self, path: str, params: Params = None) -> ResoResponse:
        """:meth:`get` to await, on a worker thread: several run at once under ``gather``."""
        return await asyncio.to_thread(self.get, path, params)

    def paginate(
        self, path: str, params: Params = None, *, max_records: int | None = None
    ) -> Iterator[Any]:
        """Every record of a collection, following ``@odata.nextLink`` exactly as given (same host
        only): production's carry an opaque ``$skiptoken`` that must not be rebuilt."""
        return islice(chain.from_iterable(self._pages(path, params)), max_records)

    def _pages(self, path: str, params: Params) -> Iterator[ResoResponse]:
        page = self.get(path, params=params)
        yield page
        while page.next_link:
            page = self.get(self.base.resolve(page.next_link, link=True))
            yield page


def parse_reso(response: requests.Response) -> ResoResponse:
    """Parse a 2xx RESO answer (a collection with ``value``, or one entity)."""
    body = _json(response)
    if not isinstance(body, dict):
        raise UnexpectedResponse(
            f"The RESO Web API answered HTTP {response.status_code} with a body that is not JSON.",
            body=response.text[:200],
        )
    link = body.get("@odata.nextLink")
    return ResoResponse(
        raw=body,
        status=response.status_code,
        value=body.get("value", body),
        count=numeric_code(body.get("@odata.count")),
        next_link=link if isinstance(link, str) else None,
    )
