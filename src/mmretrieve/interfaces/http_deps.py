"""What the HTTP routers share, as FastAPI dependencies read from ``request.app.state``.

``create_app`` puts one of each on the app's state: ``index`` (the :class:`~mmretrieve.Index`),
``settings`` (:class:`ServerSettings`), ``slots`` (:class:`SearchSlots`) and ``thumbnails``
(:class:`ThumbnailCache`). An endpoint asks for them by type, e.g. ``index: IndexDep``; nothing
is held in module globals, so two apps in one process keep their own.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import json
import threading
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import Response

from ..api import Index
from .http_params import HTTPProblem, json_default, key_matches
from .http_settings import ServerSettings
from .thumbnails import ThumbnailCache

T = TypeVar("T")


class SearchSlots:
    """Up to ``count`` searches at once; one that cannot start within ``timeout`` seconds is
    refused (503 with Retry-After), not queued forever."""

    def __init__(self, count: int, timeout: float) -> None:
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(count)
        self._done: set[str] = set()

    def run(self, work: Callable[[], T]) -> T:
        if not self._slots.acquire(timeout=self.timeout):
            raise HTTPProblem(503, "the server is busy: try again", {"Retry-After": "1"})
        try:
            return work()
        finally:
            self._slots.release()

    def once(self, name: str, work: Callable[[], object]) -> None:
        """Run ``work`` in a slot until it has succeeded once (e.g. the first use of a model,
        which may load it); later calls need neither the slot nor the work."""
        if name not in self._done:
            self.run(work)
            self._done.add(name)


async def get_index(request: Request) -> Index:
    index: Index = request.app.state.index
    return index


async def get_settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


async def get_slots(request: Request) -> SearchSlots:
    slots: SearchSlots = request.app.state.slots
    return slots


async def get_thumbnails(request: Request) -> ThumbnailCache:
    thumbnails: ThumbnailCache = request.app.state.thumbnails
    return thumbnails


async def check_key(request: Request) -> None:
    """The API key, when the server has one (the page, its assets and /health need none)."""
    if not key_matches(request.app.state.settings.api_key, request.headers):
        raise HTTPProblem(
            401,
            "missing or wrong API key: send it in the X-API-Key header",
            {"WWW-Authenticate": "Bearer"},
        )


IndexDep = Annotated[Index, Depends(get_index)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
SlotsDep = Annotated[SearchSlots, Depends(get_slots)]
ThumbnailsDep = Annotated[ThumbnailCache, Depends(get_thumbnails)]
PROTECTED = [Depends(check_key)]  # route dependencies of every endpoint behind the key


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, default=json_default)
    return Response(body, status_code=status, media_type="application/json")
