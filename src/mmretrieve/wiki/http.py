"""A small polite HTTP client for MediaWiki sites (Wikimedia's User-Agent and API etiquette).

- a descriptive User-Agent with a contact, as the Wikimedia User-Agent policy asks
  (https://meta.wikimedia.org/wiki/User-Agent_policy);
- a hard limit on requests in flight (shared by every thread using the client);
- ``maxlag`` on every API call; a ``maxlag`` error waits and retries;
- retries with exponential backoff (and jitter) on 429, 5xx, timeouts and dropped connections,
  honouring ``Retry-After`` up to a cap;
- downloads are streamed and abandoned as soon as they pass a byte cap or announce a content type
  that is not wanted.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import BadInputError, MMRetrieveError, require

PROJECT_URL = "https://pypi.org/project/mmretrieve/"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("mmretrieve")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0"


def user_agent(contact: str | None = None) -> str:
    """``mmretrieve/<v> (<contact or project URL>) httpx/<v>``, the shape Wikimedia asks for."""
    httpx = require("httpx", "wiki")
    who = contact.strip() if contact and contact.strip() else PROJECT_URL
    return f"mmretrieve/{_version()} ({who}) httpx/{httpx.__version__}"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """How politely to talk to a MediaWiki site."""

    user_agent: str | None = None  # None: user_agent(contact)
    contact: str | None = None
    concurrency: int = 3
    timeout: float = 30.0
    retries: int = 5
    backoff: float = 1.0  # first retry wait in seconds; doubles each retry
    max_wait: float = 120.0  # cap on any single wait, Retry-After included
    maxlag: int = 5


@dataclass(frozen=True, slots=True)
class Download:
    data: bytes
    content_type: str
    url: str


class _RetryLater(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


class PoliteClient:
    """Thread-safe HTTP client: one connection pool, at most ``concurrency`` requests in flight."""

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: Any = None,
    ) -> None:
        httpx = require("httpx", "wiki")
        self.settings = settings or HttpSettings()
        self._httpx = httpx
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max(1, self.settings.concurrency))
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        agent = self.settings.user_agent or user_agent(self.settings.contact)
        self._client = httpx.Client(
            headers={"User-Agent": agent},
            timeout=httpx.Timeout(self.settings.timeout, connect=min(10.0, self.settings.timeout)),
            follow_redirects=True,
            transport=transport,
            limits=httpx.Limits(max_connections=max(1, self.settings.concurrency)),
        )

    def __enter__(self) -> PoliteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # --- the retry loop ---------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        base = self.settings.backoff * (2**attempt)
        return base * (0.75 + random.random() / 2)  # noqa: S311 - jitter, not crypto

    def _request(
        self, url: str, params: Mapping[str, str] | None, read: Callable[[Any], Any]
    ) -> Any:
        """GET ``url`` and hand the streamed response to ``read``; retry what is worth retrying."""
        httpx = self._httpx
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            try:
                with self._slots:
                    with self._lock:
                        self.requests += 1
                    with self._client.stream("GET", url, params=params) as resp:
                        if resp.status_code in RETRY_STATUSES:
                            wait = retry_after_seconds(resp.headers.get("Retry-After"))
                            raise _RetryLater(f"HTTP {resp.status_code}", wait)
                        if resp.status_code >= 400:
                            raise MMRetrieveError(f"GET {resp.url}: HTTP {resp.status_code}")
                        return read(resp)
            except _RetryLater as exc:
                reason, wait = exc.reason, exc.wait
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                reason, wait = f"{type(exc).__name__}: {exc}", None
            if attempt == attempts - 1:
                raise MMRetrieveError(f"GET {url}: {reason} (gave up after {attempts} attempts)")
            with self._lock:
                self.retries += 1
            self._sleep(
                min(self._backoff(attempt) if wait is None else wait, self.settings.max_wait)
            )
        raise AssertionError("unreachable")  # pragma: no cover

    # --- public calls -----------------------------------------------------------------------------

    def api(self, api_url: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One Action API call (JSON, formatversion 2, maxlag); API errors raise MMRetrieveError."""
        query = {k: _param(v) for k, v in params.items() if v is not None and v is not False}
        query.update(format="json", formatversion="2", maxlag=str(self.settings.maxlag))

        def read(resp: Any) -> dict[str, Any]:
            resp.read()
            try:
                data = resp.json()
            except ValueError as exc:
                raise MMRetrieveError(
                    f"{api_url} did not answer JSON; is it a MediaWiki API?"
                ) from exc
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict):
                if error.get("code") == "maxlag":
                    wait = retry_after_seconds(resp.headers.get("Retry-After"))
                    raise _RetryLater("maxlag: " + str(error.get("info", "")), wait or 5.0)
                raise MMRetrieveError(
                    f"MediaWiki API error {error.get('code')}: {error.get('info')}"
                )
            if not isinstance(data, dict):
                raise MMRetrieveError(f"{api_url} answered something other than a JSON object")
            return data

        return self._request(api_url, query, read)

    def download(
        self, url: str, *, max_bytes: int, accept: Callable[[str], bool] | None = None
    ) -> Download:
        """Stream ``url`` into memory; BadInputError when too big or of an unwanted content type."""

        def read(resp: Any) -> Download:
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if accept is not None and not accept(ctype):
                raise BadInputError(f"content type {ctype or 'missing'} is not a raster image")
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise BadInputError(f"{int(declared)} bytes is over the {max_bytes}-byte cap")
            chunks, total = [], 0
            for chunk in resp.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise BadInputError(f"over the {max_bytes}-byte cap (stopped reading)")
                chunks.append(chunk)
            return Download(b"".join(chunks), ctype, str(resp.url))

        return self._request(url, None, read)


def _param(value: Any) -> str:
    if value is True:
        return "1"
    if isinstance(value, (list, tuple)):
        return "|".join(str(v) for v in value)
    return str(value)
