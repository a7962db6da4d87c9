"""The HTTP server's limits, in one frozen object built once at the edge (``mmretrieve serve``)
and handed to :func:`~mmretrieve.interfaces.http.create_app` (no FastAPI needed to import).

    >>> ServerSettings(max_concurrent=2).max_k
    100
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .thumbnails import DEFAULT_MAX_BYTES as DEFAULT_THUMBNAIL_CACHE_BYTES
from .thumbnails import DEFAULT_SIZE as DEFAULT_THUMBNAIL_SIZE

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_K = 100
DEFAULT_REQUEST_TIMEOUT = 30.0
# Searches answered at once. Their models run on shared batchers (retrieval/batching.py) and
# their store reads on a shared pool, so more at once adds batching, not model copies; past this
# many a request waits (up to request_timeout, then 503), which keeps memory bounded.
DEFAULT_MAX_CONCURRENT = 16


@dataclass(frozen=True)
class ServerSettings:
    """Every limit of the HTTP server (docs/HTTP.md lists them with their ``serve`` options).

    ``api_key``: when set, every endpoint except ``/``, its assets, ``/health`` and the API docs
    needs it in ``X-API-Key`` (or ``Authorization: Bearer``). ``max_upload_bytes`` caps an
    uploaded image (413 above it); ``max_pixels`` caps its pixel count (422). ``max_k``: the
    largest k a client may ask for. ``cors_origins``: origins allowed to call the API from
    other sites (none by default). Thumbnails are at most ``thumbnail_size`` pixels on their
    longest side, cached in ``thumbnail_cache_dir`` (a private temporary directory by default)
    holding at most ``thumbnail_cache_bytes``. ``request_timeout``: seconds a client has to send
    a request body (408 after it), and a search may wait for a free slot (503 after it).
    ``max_concurrent``: searches answered at once; the process holds one copy of each model
    whatever this is.
    """

    api_key: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_k: int = DEFAULT_MAX_K
    cors_origins: Sequence[str] = ()
    thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE
    thumbnail_cache_dir: str | None = None
    thumbnail_cache_bytes: int = DEFAULT_THUMBNAIL_CACHE_BYTES
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_concurrent: int = DEFAULT_MAX_CONCURRENT

    def __post_init__(self) -> None:
        # A tuple whatever was given (a list from JSON, None), so the settings stay hashable.
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins or ()))
        count = self.max_concurrent
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"max_concurrent must be a whole number >= 1, got {count!r}")
