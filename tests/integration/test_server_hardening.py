"""Server hardening (issue 8), against a real uvicorn server on 127.0.0.1 spoken to with raw
sockets (so no client library normalises ``..`` or percent-escapes away), over an index built
with FAKE encoders.

Decision on symlinks (docs/RELIABILITY.md): a file that is a symlink to outside the corpus is
refused at index time (reported, never stored, so never served); the server additionally refuses
an indexed file that was swapped for a symlink after indexing. Nothing but indexed images (found
by id in the store) and the page's fixed assets is ever served.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("fastapi", reason="the server extra is not installed")
pytest.importorskip("uvicorn", reason="the server extra is not installed")

import uvicorn  # noqa: E402

from fakes import FakeClipEncoder, FakeTextEncoder  # noqa: E402
from mmretrieve import Index  # noqa: E402
from mmretrieve.interfaces import http_params  # noqa: E402
from mmretrieve.interfaces.http import ServerSettings, create_app  # noqa: E402
from mmretrieve.interfaces.http_guard import guarded_protocol  # noqa: E402

SECRET = "root:x:0:0:SECRET-OUTSIDE-THE-CORPUS"
TIMEOUT = 1.0  # the server's request timeout in these tests, seconds
SLOTS = 2  # searches at once (create_app's max_concurrent)
MAX_UPLOAD = 50_000
MAX_PIXELS = 250_000


def picture(seed: int, size: tuple[int, int] = (60, 40)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Server:
    base: Path
    corpus: Path
    index: Index
    port: int
    report: list[dict[str, str]]
    secret_png: bytes

    def raw(self, data: bytes, wait: float = 5.0) -> bytes:
        """Send ``data`` as is; everything the server answers until it closes or goes quiet."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=wait) as sock:
            sock.sendall(data)
            out = b""
            with contextlib.suppress(socket.timeout, ConnectionResetError):
                while chunk := sock.recv(65536):
                    out += chunk
            return out

    def get(self, target: bytes | str, headers: str = "") -> tuple[int, bytes]:
        if isinstance(target, str):
            target = target.encode()
        request = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        answer = self.raw(request + headers.encode() + b"Connection: close\r\n\r\n")
        return _status(answer), answer

    def post_json(self, body: dict, headers: str = "") -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        head = (
            "POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{headers}Connection: close\r\n\r\n"
        )
        answer = self.raw(head.encode() + data)
        return _status(answer), answer


def _status(answer: bytes) -> int:
    line = answer.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 else 0


@contextlib.contextmanager
def serving(app: object, header_timeout: float = TIMEOUT) -> Iterator[int]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="critical", http=guarded_protocol(header_timeout)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from click.testing import CliRunner

    from helpers.index_with_fakes import install_fake_encoders
    from mmretrieve.interfaces.cli import main

    base = tmp_path_factory.mktemp("hard").resolve()
    corpus = base / "corpus"
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    secret_png = picture(99)
    (outside / "secret.png").write_bytes(secret_png)
    for n, name in enumerate(("Batman", "Tomato")):
        folder = corpus / name
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(f"{name} is the subject of this article.")
        (folder / "photo.png").write_bytes(picture(n))
        (folder / "swapped.png").write_bytes(picture(n + 10))
    (corpus / "Batman" / "leak.png").symlink_to(outside / "secret.png")
    (corpus / "Batman" / "leak.txt").symlink_to(outside / "secret.txt")
    (corpus / "Tomato" / "article.txt").unlink()
    (corpus / "Tomato" / "article.txt").symlink_to(outside / "secret.txt")
    undo = install_fake_encoders()
    try:
        args = ["index", str(corpus), "--index", str(base / "idx"), "--no-progress"]
        result = CliRunner().invoke(main, [*args, "--report", str(base / "report.jsonl")])
    finally:
        undo()
    assert result.exit_code == 3, result.output
    report = [json.loads(x) for x in (base / "report.jsonl").read_text().splitlines()]
    index = Index.open(
        base / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    app = create_app(
        index,
        ServerSettings(
            max_upload_bytes=MAX_UPLOAD,
            max_pixels=MAX_PIXELS,
            thumbnail_cache_dir=str(base / "thumbs"),
            request_timeout=TIMEOUT,
            max_concurrent=SLOTS,
        ),
    )
    with serving(app) as port:
        yield Server(base, corpus, index, port, report, secret_png)


# -------------------------------------------------------------------------- files


def test_symlinks_out_of_the_corpus_are_refused_at_index_time(server: Server) -> None:
    reasons = {Path(r["path"]).relative_to(server.corpus).as_posix(): r for r in server.report}
    for rel in ("Batman/leak.png", "Tomato/article.txt"):
        assert reasons[rel]["reason"].startswith("symlink to a file outside the corpus"), rel
    assert reasons["Batman/leak.txt"]["reason"] == "unknown file type '.txt'"
    assert server.index.image("Batman/leak.png") is None
    assert server.index.articles(["Tomato"]) == {}
    for target in ("/images/Batman/leak.png", "/images/Batman%2Fleak.png/thumbnail"):
        status, body = server.get(target)
        assert status == 404 and server.secret_png not in body
    status, body = server.post_json({"text": "root SECRET OUTSIDE CORPUS", "k": 50})
    assert status == 200 and b"SECRET-OUTSIDE" not in body


TRAVERSALS = [
    "../outside/secret.txt",
    "../../../../../../etc/passwd",
    "%2e%2e/outside/secret.txt",
    "%2e%2e%2foutside%2fsecret.txt",
    "%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "%252e%252e%252foutside%252fsecret.txt",
    "..%5coutside%5csecret.txt",
    "..\\outside\\secret.txt",
    "%c0%ae%c0%ae/outside/secret.txt",
    "..%c0%afoutside%c0%afsecret.txt",
    "%ef%bc%8e%ef%bc%8e%ef%bc%8foutside%ef%bc%8fsecret.txt",
    "%u002e%u002e%u2215outside%u2215secret.txt",
    "....//....//outside//secret.txt",
    "Batman/photo.png%00../../outside/secret.txt",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "file:%2f%2f%2fetc%2fpasswd",
    "C:%5cWindows%5cwin.ini",
    "~root/.bashrc",
]


def _targets(server: Server) -> list[str]:
    secret = str(server.base / "outside" / "secret.png")
    photo = str(server.corpus / "Batman" / "photo.png")
    payloads = [
        *TRAVERSALS,
        secret,
        quote(secret, safe=""),
        photo,  # an indexed file, but by path: only ids are looked up
        quote(photo, safe=""),
    ]
    targets = []
    for p in payloads:
        targets += [
            f"/images/{p}",
            f"/images/{p}/thumbnail",
            f"/articles/{p}",
            f"/ui/{p}",
            f"/{p}",
            f"/docs/{p}",
            f"/static/{p}",
        ]
    return targets


def test_no_path_leads_outside_the_index(server: Server) -> None:
    photo = (server.corpus / "Batman" / "photo.png").read_bytes()
    for target in _targets(server):
        status, body = server.get(target)
        assert status in (400, 404, 405), (target, status)
        assert b"SECRET-OUTSIDE" not in body and b"root:" not in body, target
        assert server.secret_png not in body and photo not in body, target
    for raw in (b"/images/\xef\xbc\x8e\xef\xbc\x8e/outside/secret.txt", b"/images/..%00/x"):
        status, body = server.get(raw)
        assert status in (400, 404) and b"SECRET-OUTSIDE" not in body


def test_the_real_image_is_served_by_id_only(server: Server) -> None:
    status, body = server.get("/images/Batman%2Fphoto.png")
    assert status == 200 and body.endswith((server.corpus / "Batman" / "photo.png").read_bytes())
    status, _ = server.get("/images/Batman%2Fphoto.png/thumbnail")
    assert status == 200


def test_an_indexed_file_swapped_for_a_symlink_is_not_served(server: Server) -> None:
    swapped = server.corpus / "Tomato" / "swapped.png"
    assert server.index.image("Tomato/swapped.png") is not None
    swapped.unlink()
    swapped.symlink_to(server.base / "outside" / "secret.png")
    for target in ("/images/Tomato%2Fswapped.png", "/images/Tomato%2Fswapped.png/thumbnail"):
        status, body = server.get(target)
        assert status == 404 and server.secret_png not in body, target


# -------------------------------------------------------------------------- uploads


def _multipart(image: bytes) -> tuple[bytes, str]:
    boundary = "mmretrieveboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_upload_size_and_pixel_caps(server: Server) -> None:
    big = os.urandom(MAX_UPLOAD + 70_000)
    body, kind = _multipart(big)
    head = (
        f"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    assert _status(server.raw(head.encode() + body)) == 413
    # No Content-Length at all (chunked): the body is counted as it streams in.
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:40_000], body[40_000:]))
    head = (
        f"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    assert _status(server.raw(head.encode() + chunked + b"0\r\n\r\n")) == 413
    status, _ = server.post_json({"image": base64.b64encode(big).decode()})
    assert status == 413
    buf = io.BytesIO()
    PILImage.new("RGB", (1000, 300), (9, 9, 9)).save(buf, "PNG")
    wide = buf.getvalue()  # 300,000 pixels in a small file
    assert len(wide) < MAX_UPLOAD
    status, answer = server.post_json({"image": base64.b64encode(wide).decode()})
    assert status == 422 and b"image too large" in answer
    bomb = bytearray(picture(2, size=(1, 1)))
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2
    import struct
    import zlib

    bomb[29:33] = struct.pack(">I", zlib.crc32(bytes(bomb[12:29])))
    status, answer = server.post_json({"image": base64.b64encode(bytes(bomb)).decode()})
    assert status == 422 and b"image too large" in answer


# -------------------------------------------------------------------------- timeouts


def test_a_silent_connection_is_closed(server: Server) -> None:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert sock.recv(1024) == b""  # closed by the server, nothing sent
    assert time.monotonic() - start < TIMEOUT + 3


def test_trickled_headers_are_cut_off(server: Server) -> None:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        closed = False
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - start > TIMEOUT + 3:
                break
        if not closed:
            sock.settimeout(2)
            with contextlib.suppress(ConnectionResetError):
                closed = sock.recv(1024) == b""
    assert closed and time.monotonic() - start < TIMEOUT + 3


def test_a_body_that_never_comes_gets_408(server: Server) -> None:
    head = (
        "POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        'Content-Length: 1000\r\n\r\n{"text": '
    )
    start = time.monotonic()
    answer = server.raw(head.encode(), wait=TIMEOUT + 5)
    assert _status(answer) == 408 and time.monotonic() - start < TIMEOUT + 3


def _slow_searches(server: Server, monkeypatch, seconds: float) -> threading.Semaphore:
    """Make every search take ``seconds`` longer; the semaphore is released as each starts."""
    real = server.index.search
    started = threading.Semaphore(0)

    def slow(*args, **kwargs):
        started.release()
        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(server.index, "search", slow)
    return started


def test_searches_are_answered_at_once_up_to_the_slots(server: Server, monkeypatch) -> None:
    _slow_searches(server, monkeypatch, 1.5)
    statuses: list[int] = []
    begin = time.monotonic()
    threads = [
        threading.Thread(target=lambda: statuses.append(server.post_json({"text": "bat"})[0]))
        for _ in range(SLOTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert statuses == [200] * SLOTS
    assert time.monotonic() - begin < 1.5 * SLOTS - 0.5  # not one after another


def test_a_search_that_cannot_start_in_time_gets_503(server: Server, monkeypatch) -> None:
    started = _slow_searches(server, monkeypatch, TIMEOUT * 2.5)
    first: list[int] = []
    threads = [
        threading.Thread(target=lambda: first.append(server.post_json({"text": "bat"})[0]))
        for _ in range(SLOTS)
    ]
    for thread in threads:
        thread.start()
    for _ in range(SLOTS):
        assert started.acquire(timeout=10)  # every slot is taken
    status, answer = server.post_json({"text": "tomato"})
    for thread in threads:
        thread.join(20)
    assert status == 503 and b"busy" in answer and b"retry-after: 1" in answer.lower()
    assert first == [200] * SLOTS


# -------------------------------------------------------------------------- no fetching


def test_no_url_is_fetched_on_a_query(server: Server) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/picture.png"
    try:
        for body in (
            {"image": url},
            {"image": f"data:text/uri-list,{url}"},
            {"image_url": url},
            {"url": url},
            {"text": "bat", "image": "file:///etc/passwd"},
        ):
            status, _ = server.post_json(body)
            assert status == 422, body
        status, _ = server.post_json({"text": url})  # words that look like a URL: a text search
        assert status == 200
        form, kind = (
            b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
            + (url.encode() + b"\r\n--b--\r\n"),
            "multipart/form-data; boundary=b",
        )
        head = (
            f"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n"
        )
        assert _status(server.raw(head.encode() + form)) == 422
        with pytest.raises(socket.timeout):
            listener.accept()  # nobody came
    finally:
        listener.close()


# -------------------------------------------------------------------------- defaults


def test_cors_is_off_by_default(server: Server) -> None:
    origin = "Origin: https://evil.example\r\n"
    for target in ("/health", "/stats"):
        _, answer = server.get(target, origin)
        assert b"access-control-allow-origin" not in answer.lower()
    preflight = (
        "OPTIONS /search HTTP/1.1\r\nHost: x\r\n" + origin
        + "Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    answer = server.raw(preflight.encode())
    assert _status(answer) in (404, 405) and b"access-control-allow" not in answer.lower()


def test_api_key_is_compared_in_constant_time(server: Server, monkeypatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = http_params.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(http_params.hmac, "compare_digest", spy)
    app = create_app(
        server.index,
        ServerSettings(api_key="k3y-s3cret", thumbnail_cache_dir=str(server.base / "thumbs-key")),
    )
    with serving(app) as port:
        keyed = Server(server.base, server.corpus, server.index, port, [], b"")
        for header in ("", "X-API-Key: k3y\r\n", "X-API-Key: k3y-s3cretx\r\n", "X-API-Key: \r\n"):
            status, _ = keyed.post_json({"text": "bat"}, header)
            assert status == 401, header
        assert keyed.get("/stats?api_key=k3y-s3cret")[0] == 401  # never from the URL
        assert keyed.post_json({"text": "bat"}, "Authorization: Bearer k3y-s3cret\r\n")[0] == 200
        assert keyed.get("/health")[0] == 200
    assert calls and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


def test_serve_binds_loopback_by_default(tmp_path: Path) -> None:
    """The real ``serve`` command (FAKE encoders): listens on 127.0.0.1 only."""
    from helpers.index_with_fakes import LAUNCHER_PATH

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "Bat.txt").write_text("Batman lives in Gotham.")
    run = [sys.executable, str(LAUNCHER_PATH)]
    subprocess.run([*run, "index", str(corpus), "--index", str(tmp_path / "idx"),
                    "--no-progress"], check=True, capture_output=True, timeout=120)  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [*run, "serve", "--index", str(tmp_path / "idx"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.2)
        listening = _listening_addresses(port)
        assert listening == {"127.0.0.1"}, listening
    finally:
        proc.terminate()
        proc.wait(30)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            pytest.skip("no /proc/net/tcp here")
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) != port or state != "0A":  # 0A: LISTEN
                continue
            if len(address) == 8:
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
            else:
                found.add("::" if int(address, 16) == 0 else address)
    return found
