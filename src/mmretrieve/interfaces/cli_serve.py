"""``mmretrieve serve``: the HTTP API and web page for one index (added to the group in cli.py)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import click

from ..config import settings_from_env
from ..errors import require
from .cli_common import device_option, friendly, index_option, warn
from .http_guard import ENV_HEADER_TIMEOUT, guarded_protocol
from .http_settings import (
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_K,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
    ServerSettings,
)
from .thumbnails import DEFAULT_MAX_BYTES, DEFAULT_SIZE

ENV_API_KEY = "MMRETRIEVE_API_KEY"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@click.command("serve")
@index_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Use 0.0.0.0 only on a trusted network, with --api-key.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="TCP port to listen on.",
)
@click.option(
    "--api-key",
    envvar=ENV_API_KEY,
    default=None,
    help=f"Require this key in the X-API-Key header on API calls (env {ENV_API_KEY}). "
    "The page and /health stay open; the page asks for the key.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Allow browser calls from this origin, e.g. https://example.org "
    "(repeatable; none by default).",
)
@click.option(
    "--max-upload-bytes",
    type=click.IntRange(1024),
    default=DEFAULT_MAX_UPLOAD_BYTES,
    show_default=True,
    help="Largest uploaded query image in bytes (bigger: 413).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Largest uploaded query image in pixels (bigger: 422).",
)
@click.option(
    "--max-k",
    type=click.IntRange(1, 1000),
    default=DEFAULT_MAX_K,
    show_default=True,
    help="Largest k a client may ask for.",
)
@click.option(
    "--thumbnail-size",
    type=click.IntRange(16, 2048),
    default=DEFAULT_SIZE,
    show_default=True,
    help="Longest side of thumbnails in pixels.",
)
@click.option(
    "--thumbnail-cache",
    "thumbnail_cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for cached thumbnails (default: a private temporary directory).",
)
@click.option(
    "--thumbnail-cache-bytes",
    type=click.IntRange(0),
    default=DEFAULT_MAX_BYTES,
    show_default=True,
    help="Most bytes the thumbnail cache may hold.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(0.1, 3600),
    default=DEFAULT_REQUEST_TIMEOUT,
    show_default=True,
    help="Seconds a client has to send its request headers, then its body, and a search may "
    "wait for a free slot (then 408 or 503; slow clients are disconnected).",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(1, 1024),
    default=DEFAULT_MAX_CONCURRENT,
    show_default=True,
    help="Searches answered at once (one copy of each model serves them all; queries that "
    "arrive together are encoded in one batch).",
)
@click.option(
    "--no-warm",
    is_flag=True,
    help="Start without loading the models and holding the tables first (the first searches "
    "are then slower).",
)
@device_option
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes answering requests. Each holds its own copy of the query models and of the "
    "tables it keeps in memory, so memory grows with N; more than one lets a search's Python "
    "work use more than one core.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="uvicorn log level.",
)
@friendly
def serve_cmd(
    index_path: str,
    host: str,
    port: int,
    api_key: str | None,
    cors_origins: tuple[str, ...],
    max_upload_bytes: int,
    max_pixels: int,
    max_k: int,
    thumbnail_size: int,
    thumbnail_cache: Path | None,
    thumbnail_cache_bytes: int,
    request_timeout: float,
    max_concurrent: int,
    no_warm: bool,
    device: str | None,
    workers: int,
    log_level: str,
) -> None:
    """Serve the search API and web page for an index (needs the ``server`` extra).

    The page is at http://HOST:PORT/ and the API documentation at /docs. Binds the loopback
    address by default; nothing but the index's own images is ever served.

    \b
    Example:
      mmretrieve serve --index ./idx
      mmretrieve serve --index ./idx --port 9000 --api-key "$(openssl rand -hex 16)"
      mmretrieve serve --index ./idx --workers 2     # two processes, twice the memory
      curl -s localhost:8000/search -H 'content-type: application/json' \\
           -d '{"text": "Bat man", "k": 5}'
    """
    settings = ServerSettings(
        api_key=api_key or None,
        max_upload_bytes=max_upload_bytes,
        max_pixels=max_pixels,
        max_k=max_k,
        cors_origins=tuple(cors_origins),
        thumbnail_size=thumbnail_size,
        thumbnail_cache_dir=str(thumbnail_cache) if thumbnail_cache else None,
        thumbnail_cache_bytes=thumbnail_cache_bytes,
        request_timeout=request_timeout,
        max_concurrent=max_concurrent,
    )
    uvicorn = require("uvicorn", "server")
    # With workers, each one loads and warms its own copy; here the index is only opened.
    warm_here = not no_warm and workers == 1
    index, app = _ready_app(index_path, device, settings, warm=warm_here, say=True)
    if host not in LOOPBACK and not api_key:
        click.echo(
            f"warning: serving on {host} without --api-key: anyone who can reach this "
            "address can search the index and read its images.",
            err=True,
        )
    click.echo(
        f"mmretrieve: serving {index_path} on http://{_url_host(host)}:{port}/ (API docs at /docs)"
        + (f" with {workers} worker processes" if workers > 1 else ""),
        err=True,
    )
    if workers > 1:
        # Each worker process builds and warms its own index and app (worker_app) from these
        # settings; this process only checked that the index opens.
        index.close()
        app_settings = dataclasses.asdict(settings)  # JSON: the tuple of origins as a list
        os.environ[ENV_WORKER] = json.dumps(
            {"index": str(index_path), "device": device, "app": app_settings, "warm": not no_warm}
        )
        os.environ[ENV_HEADER_TIMEOUT] = str(request_timeout)
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=log_level,
            server_header=False,
            http="mmretrieve.interfaces.http_guard:EnvGuardedProtocol",
        )
        return
    with index:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            server_header=False,
            http=guarded_protocol(request_timeout),
        )


ENV_WORKER = "MMRETRIEVE_SERVE_WORKER"


def _ready_app(
    index_path: str, device: str | None, settings: ServerSettings, *, warm: bool, say: bool
) -> tuple[Any, Any]:
    """The index and its app, warmed (models, tables, one request of each kind) unless not."""
    from ..api import Index
    from .http import create_app

    index = Index.open(index_path, create=False, settings=settings_from_env(device=device))
    app = create_app(index, settings)
    if warm:
        if say:
            click.echo("mmretrieve: loading the query models and holding the tables...", err=True)
        ready = index.warm()
        warm_http(app, settings.api_key, with_image=index.image_encoder is not None)
        if say:
            click.echo(f"mmretrieve: ready in {ready['seconds']} s", err=True)
    if say:
        warn(index)
    return index, app


def worker_app() -> Any:
    """The app of one ``serve --workers`` process (uvicorn calls it in each worker)."""
    config = json.loads(os.environ[ENV_WORKER])
    settings = ServerSettings(**config["app"])
    _, app = _ready_app(config["index"], config["device"], settings, warm=config["warm"], say=False)
    return app


def warm_http(app: Any, api_key: str | None, *, with_image: bool) -> list[int]:
    """One text and one text + image ``POST /search`` through the app itself, before it listens:
    the first request of a kind also pays for the web layer's first run (request parsing,
    validation, the JSON response), which ``Index.warm`` does not reach. Returns the statuses."""
    import asyncio
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 90, 60)).save(buffer, "JPEG")
    bodies = [{"text": "warm up", "k": 1}]
    if with_image:
        bodies.append({"text": "warm up", "image": base64.b64encode(buffer.getvalue()).decode()})
    headers = [(b"content-type", b"application/json")]
    if api_key:
        headers.append((b"x-api-key", api_key.encode()))

    async def post(body: bytes) -> int:
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/search", "raw_path": b"/search", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
        }  # fmt: skip
        await app(scope, receive, send)
        return status

    async def all_of() -> list[int]:
        return [await post(json.dumps(b).encode()) for b in bodies]

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop here (`serve`): run one
        return asyncio.run(all_of())
    # Inside a running loop (a `--workers` process builds its app there): a loop of its own,
    # in a thread of its own.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, all_of()).result()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":  # pragma: no cover - `python -m mmretrieve.interfaces.cli_serve`
    serve_cmd()
