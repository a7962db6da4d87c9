"""The HTTP API end to end (FastAPI TestClient) over a real LanceDB index in a temp dir, built
with the FAKE deterministic encoders of tests/fakes.py: every endpoint, every error status, and
attempts to read files outside the index."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("fastapi", reason="the server extra is not installed")
pytest.importorskip("multipart", reason="python-multipart (server extra) is not installed")
pytest.importorskip("httpx", reason="httpx (dev extra) is needed by FastAPI's TestClient")

from fastapi.testclient import TestClient  # noqa: E402

from fakes import FakeClipEncoder, FakeTextEncoder  # noqa: E402
from mmretrieve import Index  # noqa: E402
from mmretrieve.interfaces.http import ServerSettings, create_app  # noqa: E402

ARTICLES = {
    "Batman": "Batman is a superhero. Bruce Wayne is the secret identity of Batman. "
    "He fights crime in Gotham City with the Batmobile.",
    "Vincent van Gogh": "Vincent van Gogh was a Dutch painter. His paintings include The Starry "
    "Night and Sunflowers.",
    "Tomato": "The tomato is a red fruit. Tomato soup and tomato sauce are common dishes.",
}
SECRET = "root:x:0:0:secret-file-marker"


def _picture(seed: int, size: tuple[int, int] = (60, 40)) -> PILImage.Image:
    rng = np.random.default_rng(seed)
    return PILImage.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def make_corpus(root: Path) -> Path:
    """Three articles in the folder layout, one photo each (Batman's with a caption)."""
    for n, (title, text) in enumerate(ARTICLES.items()):
        folder = root / title.replace(" ", "_")
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(text, encoding="utf-8")
        meta = {
            "id": f"wiki:en:{title}",
            "title": title,
            "url": f"https://en.wikipedia.org/wiki/{title.replace(' ', '_')}",
        }
        (folder / "meta.json").write_text(json.dumps(meta))
        _picture(n).save(folder / "photo.png")
    (root / "Batman" / "images.jsonl").write_text(
        json.dumps({"file": "photo.png", "caption": "the bat signal over Gotham"}) + "\n"
    )
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Path, Path]:
    base = tmp_path_factory.mktemp("http")
    corpus = make_corpus(base / "corpus")
    (base / "secret.txt").write_text(SECRET)
    index = Index.open(
        base / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    report = index.add(corpus)
    assert report.skipped == []
    return index, corpus, base


@pytest.fixture(scope="module")
def client(built: tuple[Index, Path, Path]) -> TestClient:
    index, _, base = built
    app = create_app(
        index,
        ServerSettings(
            max_upload_bytes=20_000,
            max_pixels=250_000,
            thumbnail_cache_dir=str(base / "thumbs"),
            thumbnail_size=32,
        ),
    )
    return TestClient(app)


def _png(img: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _image_id(client: TestClient) -> str:
    hits = client.post("/search", json={"text": "bat signal Gotham", "k": 3}).json()["hits"]
    return next(h["id"] for h in hits if h["kind"] == "image")


def test_health_stats_docs_and_page(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    stats = client.get("/stats").json()
    assert stats["counts"]["articles"] == 3 and stats["counts"]["images"] == 3
    assert "/search" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/ui/app.js" in page.text and "https://" not in page.text.split("<footer")[0]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/ui/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert "http://" not in response.text and "https://" not in response.text  # no CDN


def test_search_json_text(client: TestClient) -> None:
    response = client.post("/search", json={"text": "Who is Bruce Wayne?", "k": 2})
    assert response.status_code == 200
    data = response.json()
    assert data["articles"][0]["article"]["title"] == "Batman"
    assert data["articles"][0]["article"]["url"] == "https://en.wikipedia.org/wiki/Batman"
    query = {"text": "Who is Bruce Wayne?", "image": None, "k": 2, "min_score": None}
    assert data["query"] == query
    assert data["routes"]["text->passage:dense"] == "ok"
    assert len(data["articles"]) == 2 and data["timings_ms"]["total"] > 0
    for hit in data["hits"] + [h for g in data["articles"] for h in g["images"]]:
        if hit["kind"] == "image":  # server file paths never leave the server
            assert "uri" not in hit and hit["thumbnail_url"].endswith("/thumbnail")


def test_search_json_base64_image_weights_filters(client: TestClient, built) -> None:
    _, corpus, _ = built
    raw = (corpus / "Vincent_van_Gogh" / "photo.png").read_bytes()
    encoded = base64.b64encode(raw).decode()
    data = client.post("/search", json={"image": encoded, "k": 3}).json()
    assert data["articles"][0]["article"]["title"] == "Vincent van Gogh"
    assert data["hits"][0]["kind"] == "image" and data["query"]["image"] == "base64 image"
    data_url = {
        "text": "Bruce Wayne",
        "image": "data:image/png;base64," + encoded,
        "k": 3,
        "weights": {"image->image": 0, "image->passage": 0},
        "method": "rrf",
    }
    assert (
        client.post("/search", json=data_url).json()["articles"][0]["article"]["title"] == "Batman"
    )
    only = {"text": "Bruce Wayne", "k": 5, "filters": {"article_ids": ["wiki:en:Tomato"]}}
    groups = client.post("/search", json=only).json()["articles"]
    assert [g["article"]["id"] for g in groups] == ["wiki:en:Tomato"]


def test_search_multipart_combined(client: TestClient, built) -> None:
    _, corpus, _ = built
    raw = (corpus / "Batman" / "photo.png").read_bytes()
    response = client.post(
        "/search",
        data={"text": "Bat man", "k": "3"},
        files={"image": ("batman.png", raw, "image/png")},
    )
    assert response.status_code == 200, response.text
    data = response.json()
    first = data["articles"][0]
    assert first["article"]["title"] == "Batman" and first["images"]
    routes = data["routes"]
    assert routes.pop("image->passage:clip_text").startswith("index built without")
    assert set(routes.values()) == {"ok"} and data["query"]["image"] == "batman.png"
    thumb = client.get(first["images"][0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    text_only = client.post(
        "/search",
        data={"text": "tomato soup", "weights": "text->image=0.5"},
        files={"image": ("", b"", "application/octet-stream")},
    )
    assert text_only.status_code == 200 and text_only.json()["query"]["image"] is None


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        ({"json": {"text": "   "}}, 422, "text, an image"),
        ({"json": {}}, 422, "text, an image"),
        ({"data": {"text": ""}}, 422, "text, an image"),
        ({"json": {"text": "x", "k": 0}}, 422, "k must be"),
        ({"json": {"text": "x", "k": 10_000}}, 422, "k must be"),
        ({"json": {"text": "x", "weights": {"bogus": 1}}}, 422, "unknown route"),
        ({"json": {"text": "x", "method": "magic"}}, 422, "method must be"),
        ({"json": {"text": "x", "colour": "red"}}, 422, "unknown fields"),
        (
            {"json": {"text": "x", "filters": {"year": 1}}},
            422,
            "no indexed article has the field 'year'",
        ),
        ({"json": {"text": "x", "filters": {"license": {"a": 1}}}}, 422, "filter license: values"),
        ({"json": {"text": "x", "filters": {"bad key": "1"}}}, 422, "filter key 'bad key'"),
        ({"json": {"text": "x", "filters": ["license=x"]}}, 422, "filters must be an object"),
        ({"data": {"text": "x", "filter": "license"}}, 422, "write KEY=VALUE"),
        ({"json": {"image": "not base64!!"}}, 422, "base64"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
        ({"content": b"text=x", "headers": {"content-type": "text/plain"}}, 415, "multipart"),
    ],
)
def test_search_bad_requests(client: TestClient, kwargs, status, message) -> None:
    response = client.post("/search", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_corrupt_oversized_and_huge_pixel_uploads(client: TestClient, built) -> None:
    _, corpus, _ = built
    good = (corpus / "Tomato" / "photo.png").read_bytes()
    corrupt = client.post(
        "/search", files={"image": ("broken.png", good[: len(good) // 2], "image/png")}
    )
    assert corrupt.status_code == 422 and "corrupt or truncated" in corrupt.json()["detail"]
    not_image = client.post(
        "/search", files={"image": ("a.png", b"hello, not a picture", "image/png")}
    )
    assert not_image.status_code == 422 and "not an image" in not_image.json()["detail"]
    big = _png(_picture(7, (120, 120)))  # ~43 kB of noise: over the 20 kB limit
    assert len(big) > 20_000
    for kwargs in (
        {"files": {"image": ("big.png", big, "image/png")}},
        {"json": {"image": base64.b64encode(big).decode()}},
    ):
        too_big = client.post("/search", **kwargs)
        assert too_big.status_code == 413 and "too large" in too_big.json()["detail"]
    pixels = _png(PILImage.new("RGB", (600, 600), "white"))  # tiny file, 360k pixels > 250k
    assert len(pixels) < 20_000
    many = client.post("/search", files={"image": ("flat.png", pixels, "image/png")})
    assert many.status_code == 422 and "pixels" in many.json()["detail"]
    # declared length over the limit: refused before the body is read
    huge = client.post(
        "/search",
        content=b"x" * 200_000,
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert huge.status_code == 413


def test_articles_and_images(client: TestClient, built) -> None:
    _, corpus, _ = built
    data = client.get("/articles/wiki:en:Batman").json()
    assert data["article"]["title"] == "Batman" and data["passages"]
    assert data["passages"][0]["text"].startswith("Batman is a superhero")
    assert data["images"][0]["caption"] == "the bat signal over Gotham"
    image_id = _image_id(client)
    original = client.get(f"/images/{image_id}")
    assert original.status_code == 200 and original.headers["content-type"] == "image/png"
    assert original.content == (corpus / "Batman" / "photo.png").read_bytes()
    encoded = client.get("/images/" + image_id.replace("/", "%2F").replace(":", "%3A"))
    assert encoded.status_code == 200
    thumb = client.get(f"/images/{image_id}/thumbnail")
    img = PILImage.open(io.BytesIO(thumb.content))
    assert img.format == "JPEG" and max(img.size) <= 32


def test_unknown_ids_are_404(client: TestClient) -> None:
    for path in (
        "/articles/wiki:en:Nope",
        "/images/nope.png",
        "/images/nope.png/thumbnail",
        "/articles/x' OR '1'='1",
        "/images/x' OR id != '",
        "/ui/nope.js",
        "/ui/index.html",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "detail" in response.json()


def test_path_traversal_never_serves_files(client: TestClient, built) -> None:
    _, corpus, base = built
    secret = base / "secret.txt"
    photo = (corpus / "Batman" / "photo.png").resolve()
    attempts = [
        "/images/../secret.txt",
        "/images/..%2Fsecret.txt",
        "/images/%2e%2e%2fsecret.txt",
        "/images/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/images/..%5C..%5Csecret.txt",
        f"/images/{secret}",
        "/images/%2F" + str(secret).lstrip("/").replace("/", "%2F"),
        "/images//etc/passwd",
        "/images/file:%2F%2F%2Fetc%2Fpasswd",
        f"/images/{photo}",
        f"/images/{photo}/thumbnail",
        "/images/..%2F..%2F..%2Fetc%2Fpasswd/thumbnail",
        "/articles/..%2F..%2Fetc%2Fpasswd",
        f"/articles/{secret}",
        "/ui/..%2Fhttp.py",
        "/ui/%2e%2e%2fhttp.py",
        "/ui/../../errors.py",
    ]
    for path in attempts:
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert SECRET not in response.text and "root:" not in response.text, path
        assert not response.content.startswith(b"\x89PNG"), path


def test_api_key_and_cors(built) -> None:
    index, _, base = built
    app = create_app(
        index,
        ServerSettings(
            api_key="s3cret",
            cors_origins=["https://example.org"],
            thumbnail_cache_dir=str(base / "thumbs2"),
        ),
    )
    client = TestClient(app)
    assert client.get("/health").status_code == 200 and client.get("/").status_code == 200
    for bad in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer nope"}):
        response = client.post("/search", json={"text": "tomato"}, headers=bad)
        assert response.status_code == 401 and "API key" in response.json()["detail"]
        assert client.get("/stats", headers=bad).status_code == 401
        assert client.get("/articles/wiki:en:Tomato", headers=bad).status_code == 401
    ok = client.post("/search", json={"text": "tomato"}, headers={"X-API-Key": "s3cret"})
    assert ok.status_code == 200
    assert client.get("/stats", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    preflight = client.options(
        "/search",
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == "https://example.org"
    other = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    no_cors = TestClient(
        create_app(index, ServerSettings(thumbnail_cache_dir=str(base / "thumbs3")))
    )
    assert (
        "access-control-allow-origin"
        not in no_cors.get("/health", headers={"Origin": "https://example.org"}).headers
    )


def test_thumbnail_cache_is_bounded(built) -> None:
    from mmretrieve.interfaces.thumbnails import ThumbnailCache

    index, corpus, base = built
    cache = ThumbnailCache(
        base / "bounded",
        size=64,
        max_bytes=1,
        decode=lambda source: index.decode_image(source, max_side=64),
    )
    photos = sorted(corpus.glob("*/photo.png"))
    paths = [cache.get(f"{n:064x}", photo) for n, photo in enumerate(photos)]
    assert all(p.parent == base / "bounded" for p in paths)
    left = list((base / "bounded").glob("*.jpg"))
    assert left == [paths[-1]]  # older entries evicted, the newest kept
    assert cache.get("../../evil", photos[0]).parent == base / "bounded"  # odd keys are hashed


def test_empty_index(tmp_path: Path) -> None:
    index = Index.open(
        tmp_path / "empty", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    client = TestClient(create_app(index, ServerSettings(thumbnail_cache_dir=str(tmp_path / "t"))))
    assert client.get("/stats").json()["counts"] == {
        "articles": 0,
        "passages": 0,
        "images": 0,
        "pictures": 0,
    }
    data = client.post("/search", json={"text": "anything"}).json()
    assert data["articles"] == [] and data["hits"] == []


def test_serve_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from click.testing import CliRunner

    from mmretrieve.interfaces.cli_serve import serve_cmd

    missing = CliRunner().invoke(serve_cmd, ["--index", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no index at" in missing.output
    index = Index.open(
        tmp_path / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    opened: dict[str, object] = {}
    served: dict[str, object] = {}

    def fake_open(location: object, **kwargs: object) -> Index:
        opened.update(kwargs, location=location)
        return index

    monkeypatch.setattr(Index, "open", staticmethod(fake_open))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw, app=app))
    args = [
        "--index",
        "idx",
        "--port",
        "9123",
        "--cors-origin",
        "https://example.org",
        "--max-upload-bytes",
        "4096",
        "--host",
        "0.0.0.0",
    ]
    result = CliRunner().invoke(serve_cmd, args)
    assert result.exit_code == 0, result.output
    assert opened["create"] is False and opened["location"] == "idx"
    assert (served["host"], served["port"]) == ("0.0.0.0", 9123)
    assert "without --api-key" in result.output  # a warning for a non-loopback address
    client = TestClient(served["app"])  # type: ignore[arg-type]
    assert client.get("/health").status_code == 200
    big = client.post("/search", files={"image": ("a.png", b"x" * 5000, "image/png")})
    assert big.status_code == 413
    quiet = CliRunner().invoke(serve_cmd, ["--index", "idx"])
    assert served["host"] == "127.0.0.1" and "without --api-key" not in quiet.output


def test_temporary_thumbnail_cache_goes_with_the_server(built, client: TestClient) -> None:
    index, _, base = built
    image_id = _image_id(client)
    app = create_app(index)  # no cache directory given: a private temporary one
    with TestClient(app) as running:
        assert running.get(f"/images/{image_id}/thumbnail").status_code == 200
        directory = app.state.thumbnails.directory
        assert len(list(directory.glob("*.jpg"))) == 1
    assert not directory.exists()
    kept = create_app(index, ServerSettings(thumbnail_cache_dir=str(base / "kept")))
    with TestClient(kept) as running:
        running.get(f"/images/{image_id}/thumbnail")
    assert list((base / "kept").glob("*.jpg"))


def test_search_explains_and_thresholds(client: TestClient) -> None:
    data = client.post("/search", json={"text": "Who is Bruce Wayne?", "k": 2}).json()
    top = data["articles"][0]
    assert 0.0 <= top["confidence"] <= 1.0
    assert sum(top["contributions"].values()) == pytest.approx(top["score"], abs=1e-4)
    for hit in data["hits"]:
        assert set(hit["contributions"]) <= set(hit["routes"])
    strict = client.post("/search", json={"text": "Who is Bruce Wayne?", "min_score": 1.0})
    assert strict.status_code == 200
    assert all(a["confidence"] >= 1.0 for a in strict.json()["articles"])
    form = client.post("/search", data={"text": "Who is Bruce Wayne?", "min_score": "0.5"})
    assert form.status_code == 200 and form.json()["query"]["min_score"] == 0.5
    for bad in (1.5, -0.1, "high", True):
        response = client.post("/search", json={"text": "Batman", "min_score": bad})
        assert response.status_code == 422 and "min_score" in response.json()["detail"]
    nan = client.post(
        "/search",
        content=b'{"text": "Batman", "min_score": NaN}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422


# -- issue 15: found from outside ---------------------------------------------------------------
def test_a_lone_surrogate_in_the_query_is_answered(client: TestClient) -> None:
    response = client.post(
        "/search",
        content=b'{"text": "\\ud800 bat"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["query"]["text"] == "\ufffd bat"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinite_numbers_are_refused(client: TestClient, constant: str) -> None:
    for body in (
        f'{{"text": "Batman", "weights": {{"text->passage:bm25": {constant}}}}}',
        f'{{"text": "Batman", "k": {constant}}}',
    ):
        response = client.post(
            "/search", content=body.encode(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, body
    form = client.post(
        "/search", data={"text": "Batman", "weights": f"text->passage:bm25={constant.lower()}"}
    )
    assert form.status_code == 422


def test_k_must_be_a_whole_number(client: TestClient) -> None:
    for k in (2.5, True, "2.5", "two"):
        response = client.post("/search", json={"text": "Batman", "k": k})
        assert response.status_code == 422, k
        assert "k must be" in response.json()["detail"]
    assert client.post("/search", json={"text": "Batman", "k": 2}).status_code == 200


def test_head_is_answered_where_get_is(client: TestClient) -> None:
    for path in ("/", "/health", "/ui/app.js"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]


def test_serve_warms_the_web_layer_before_listening(built: tuple[Index, Path, Path]):
    """`mmretrieve serve` sends a text and a text + image search through the app in process
    before it listens (FAKE encoders); the app answers normally afterwards, on another loop."""
    from mmretrieve.interfaces.cli_serve import warm_http

    index, _, _ = built
    app = create_app(index, ServerSettings(api_key="k3y"))
    assert warm_http(app, "k3y", with_image=True) == [200, 200]
    assert warm_http(app, None, with_image=False) == [401]  # the key is still asked for
    with TestClient(app) as late:
        answer = late.post(
            "/search", json={"text": "Bruce Wayne", "k": 2}, headers={"X-API-Key": "k3y"}
        )
    assert answer.status_code == 200 and answer.json()["hits"]
