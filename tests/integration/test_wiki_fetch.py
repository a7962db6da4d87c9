"""`wiki fetch` / `wiki fetch-images` against the offline fixture wiki (tests/wiki_server.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("httpx")
pytest.importorskip("mwparserfromhell")

from tests.wiki_server import (  # noqa: E402
    GARGOYLE_CAPTION,
    SUNFLOWER_CAPTION,
    Fail,
    FixtureWiki,
    export_xml,
    standard_wiki,
)

from mmretrieve.errors import MMRetrieveError  # noqa: E402
from mmretrieve.interfaces.cli_wiki import wiki  # noqa: E402
from mmretrieve.wiki import http as wiki_http  # noqa: E402
from mmretrieve.wiki.api import WikiSite, fetch_titles  # noqa: E402
from mmretrieve.wiki.dump import ingest_dump  # noqa: E402
from mmretrieve.wiki.http import HttpSettings, PoliteClient, retry_after_seconds  # noqa: E402
from mmretrieve.wiki.images import FileInfo, ImageRules  # noqa: E402
from mmretrieve.wiki.output import folder_name, read_json, read_jsonl, sha256_file  # noqa: E402

CONTACT = "tests@example.org"


@pytest.fixture
def server() -> Any:
    w = standard_wiki()
    w.start()
    yield w
    w.stop()


def run(server: FixtureWiki, *args: str) -> Any:
    """Invoke `wiki ...` with test-friendly politeness settings (fast retries, small byte cap)."""
    base = [
        "--base-url",
        server.base_url,
        "--backoff",
        "0.01",
        "--retries",
        "3",
        "--max-image-bytes",
        "100000",
        "--contact",
        CONTACT,
        "--no-progress",
    ]
    return CliRunner().invoke(wiki, [args[0], *args[1:], *base], catch_exceptions=True)


def folder(out: Path, title: str) -> Path:
    return out / folder_name("en", title)


def images_by_title(path: Path) -> dict[str, dict[str, Any]]:
    return {e["title"]: e for e in read_jsonl(path / "images.jsonl")}


def test_fetch_writes_the_folder_layout(server: FixtureWiki, tmp_path: Path) -> None:
    out = tmp_path / "wiki"
    res = run(
        server,
        "fetch",
        "Batman",
        "Bat-Man",
        "batman",
        "Mercury",
        "Nonexistent page",
        "Quiet page",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    lines = {ln.split()[1]: ln for ln in res.output.splitlines() if len(ln.split()) > 1}
    assert lines["Mercury"].startswith("disambiguation")
    assert lines["Nonexistent"].startswith("missing")
    assert "-> Batman" in lines["Bat-Man"] and "-> Batman" in lines["batman"]
    assert lines["Bat-Man"].startswith("fetched")
    assert "no usable images" in lines["Quiet"]

    bat = folder(out, "Batman")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [bat.name, folder(out, "Quiet page").name]
    )  # no folder for missing/disambiguation pages, none left half-built
    meta = read_json(bat / "meta.json")
    assert meta is not None
    assert meta["id"] == "wiki:en:Batman" and meta["title"] == "Batman"
    assert meta["page_id"] == 100 and meta["revision_id"] == 1001
    assert meta["license"] == "CC BY-SA 4.0" and meta["license_url"].startswith(
        "https://creativecommons"
    )
    assert meta["source"] == "wikipedia-api" and meta["lang"] == "en" and meta["fetched_at"]
    assert meta["url"].endswith("/wiki/Batman")
    text = (bat / "article.txt").read_text(encoding="utf-8")
    assert "== Publication history ==" in text and "=== Golden Age ===" in text
    assert "See also" not in text  # empty trailing section dropped

    imgs = images_by_title(bat)
    assert set(imgs) == {
        "File:Gargoyle vigil.jpg",
        "File:Batman cowl portrait.jpg",
        "File:Bat signal searchlight.png",
    }
    g = imgs["File:Gargoyle vigil.jpg"]
    assert g["caption"] == GARGOYLE_CAPTION and g["caption_source"] == "article"
    assert g["alt_text"] == "A caped figure crouching on stone"
    # Where the article places each image: its section (the infobox's is in the lead).
    assert g["section"] == "Publication history"
    assert imgs["File:Batman cowl portrait.jpg"]["section"] is None
    assert g["license"] == "CC BY-SA 4.0" and g["artist"] == "Example Photographer"
    assert (g["width"], g["height"], g["mime"]) == (160, 120, "image/jpeg")
    assert imgs["File:Batman cowl portrait.jpg"]["caption"].startswith("Portrait of the cowl")
    signal = imgs["File:Bat signal searchlight.png"]
    assert signal["caption"] == "The bat-signal searchlight projected onto low clouds & smoke"
    assert signal["caption_source"] == "file description"
    for entry in imgs.values():
        assert sha256_file(bat / entry["file"]) == entry["sha256"]
        assert entry["file"].endswith((".jpg", ".png"))
    # the article's own images come first, in page order
    assert [e["title"] for e in read_jsonl(bat / "images.jsonl")][:2] == [
        "File:Batman cowl portrait.jpg",
        "File:Gargoyle vigil.jpg",
    ]

    first = json.loads(
        run(server, "fetch", "Batman", "--out", str(tmp_path / "again"), "--json").output
    )
    skipped = {s["title"]: s["reason"] for s in first["items"][0]["skipped_images"]}
    assert "not a raster image (image/svg+xml)" in skipped["File:Commons-logo.svg"]
    assert "smaller than 100x100" in skipped["File:Tiny bat.png"]
    assert "skip pattern" in skipped["File:Wikiquote-logo.png"]
    assert "content type image/svg+xml" in skipped["File:Disguised vector.png"]
    assert "byte cap" in skipped["File:Huge cape.jpg"]
    assert "gave up" in skipped["File:Broken cowl.jpg"]  # body shorter than Content-Length
    assert not list((tmp_path / "again").rglob("*.tmp"))

    # politeness on every request
    assert all(CONTACT in e["ua"] and e["ua"].startswith("mmretrieve/") for e in server.log)
    for e in server.api_requests():
        assert e["params"]["maxlag"] == "5" and e["params"]["formatversion"] == "2"
    thumb = [e for e in server.file_requests("File:Huge cape.jpg")]
    assert thumb and all("/thumb/960px-" in e["path"] for e in thumb)


def test_retry_after_429_and_503_then_success(server: FixtureWiki, tmp_path: Path) -> None:
    out = tmp_path / "wiki"
    started = time.monotonic()
    res = run(
        server, "fetch", "Throttled page", "Server hiccup", "Vincent van Gogh", "--out", str(out)
    )
    assert res.exit_code == 0, res.output
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    statuses = [e["status"] for e in server.api_requests()]
    assert statuses[:2] == [429, 200] and 503 in statuses
    for title in ("Throttled page", "Server hiccup", "Vincent van Gogh"):
        assert (folder(out, title) / "meta.json").exists()
    imgs = images_by_title(folder(out, "Vincent van Gogh"))
    assert imgs["File:Sunflowers vase.jpg"]["caption"] == SUNFLOWER_CAPTION
    assert imgs["File:Starry night swirl.png"]["caption"].startswith("Swirling cypress")
    assert [e["status"] for e in server.file_requests("File:Starry night swirl.png")] == [503, 200]


def test_rerun_downloads_nothing_and_updates_changed_revisions(
    server: FixtureWiki, tmp_path: Path
) -> None:
    out = tmp_path / "wiki"
    assert run(server, "fetch", "Batman", "Vincent van Gogh", "--out", str(out)).exit_code == 0
    before = len(server.log)
    res = run(server, "fetch", "Batman", "Vincent van Gogh", "--out", str(out))
    assert res.exit_code == 0 and res.output.count("unchanged") >= 2
    new = server.log[before:]
    assert [e["kind"] for e in new] == ["api"]  # one title-resolution call, nothing else

    # a new revision: text re-fetched, unchanged images verified by sha256 and kept
    server.pages["Batman"].revid = 1002
    bat = folder(out, "Batman")
    victim = images_by_title(bat)["File:Gargoyle vigil.jpg"]["file"]
    (bat / victim).write_bytes(b"corrupted")
    before = len(server.log)
    res = run(server, "fetch", "Batman", "--out", str(out))
    assert "updated" in res.output
    kept = set(images_by_title(bat))
    fetched = [e["name"] for e in server.log[before:] if e["kind"] == "file" and e["name"] in kept]
    assert fetched == ["File:Gargoyle vigil.jpg"]  # of the kept images, only the corrupted one
    assert read_json(bat / "meta.json")["revision_id"] == 1002

    # fewer images wanted: the extra files are removed from disk and from images.jsonl
    res = run(server, "fetch", "Batman", "--out", str(out), "--max-images", "1")
    assert len(read_jsonl(bat / "images.jsonl")) == 1
    assert len([p for p in bat.iterdir() if p.suffix in (".jpg", ".png")]) == 1


def test_killed_run_resumes_without_refetching(
    server: FixtureWiki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "wiki"
    real = PoliteClient.download
    calls = {"n": 0}

    def dying(self: PoliteClient, url: str, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the second download
        return real(self, url, **kw)

    monkeypatch.setattr(PoliteClient, "download", dying)
    site = WikiSite("en", server.base_url)
    http = HttpSettings(contact=CONTACT, concurrency=1, backoff=0.01, retries=1)
    with pytest.raises(KeyboardInterrupt):
        fetch_titles(["Batman"], out, site=site, http=http, rules=ImageRules(max_bytes=100_000))
    assert not folder(out, "Batman").exists()  # readers never see a half-built article
    partial = out / f".{folder_name('en', 'Batman')}.partial"
    assert len(read_jsonl(partial / "images.jsonl")) == 1

    monkeypatch.setattr(PoliteClient, "download", real)
    report = fetch_titles(
        ["Batman"], out, site=site, http=http, rules=ImageRules(max_bytes=100_000)
    )
    assert report.items[0].status == "fetched" and report.items[0].images == 3
    assert not partial.exists()
    first = read_jsonl(folder(out, "Batman") / "images.jsonl")[0]["title"]
    assert len([e for e in server.file_requests(first) if e["status"] == 200]) == 1


def test_nothing_fetched_exits_nonzero(server: FixtureWiki, tmp_path: Path) -> None:
    res = run(server, "fetch", "Nonexistent page", "Mercury", "--out", str(tmp_path / "w"))
    assert res.exit_code == 1
    assert "error: nothing could be fetched" in res.output
    assert "missing" in res.output and "disambiguation" in res.output


def test_titles_file_and_json(server: FixtureWiki, tmp_path: Path) -> None:
    titles = tmp_path / "titles.txt"
    titles.write_text("# my list\nQuiet page\n\nNonexistent page\n", encoding="utf-8")
    res = run(server, "fetch", "--titles-file", str(titles), "--out", str(tmp_path / "w"), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["counts"] == {"fetched": 1, "missing": 1}
    assert [i["title"] for i in data["items"]] == ["Quiet page", "Nonexistent page"]


def test_no_titles_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(wiki, ["fetch", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "give titles" in res.output


def test_client_caps_retry_after_and_retries_maxlag(server: FixtureWiki) -> None:
    waits: list[float] = []
    server.fails.append(Fail("api", "Quiet page", 503, {"Retry-After": "3600"}))
    maxlag = json.dumps(
        {"error": {"code": "maxlag", "info": "Waiting for db1: 6 seconds lagged", "lag": 6}}
    )
    server.fails.append(Fail("api", "Quiet page", 200, {"Retry-After": "2"}, body=maxlag.encode()))
    settings = HttpSettings(contact=CONTACT, max_wait=0.5, backoff=0.01)
    with PoliteClient(settings, sleep=waits.append) as client:
        data = client.api(
            server.base_url + "/w/api.php",
            {"action": "query", "titles": "Quiet page", "prop": "info"},
        )
    assert data["query"]["pages"][0]["pageid"] == 400
    assert waits == [0.5, 0.5]  # 3600 s and the maxlag 2 s both capped at max_wait
    assert client.retries == 2
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None
    assert "mmretrieve/" in wiki_http.user_agent(None)


def test_fetch_images_for_dump_refs(server: FixtureWiki, tmp_path: Path) -> None:
    wikitext = (
        "'''Vincent van Gogh''' was a Dutch painter.\n"
        "[[File:Sunflowers_vase.jpg|thumb|left|Sunflowers in the dump's own caption]]\n"
        "[[Image:Commons-logo.svg|20px]]\n[[File:Never uploaded.jpg|thumb|Lost]]\n"
        "== Works ==\nMany paintings.\n"
    )
    dump = tmp_path / "dump.xml"
    dump.write_text(
        export_xml([{"title": "Vincent van Gogh", "id": 200, "text": wikitext}]), encoding="utf-8"
    )
    out = tmp_path / "wiki"
    ingest_dump(dump, out)
    van = folder(out, "Vincent van Gogh")
    refs = read_jsonl(van / "image_refs.jsonl")
    assert [r["title"] for r in refs] == [
        "File:Sunflowers vase.jpg",
        "File:Commons-logo.svg",
        "File:Never uploaded.jpg",
    ]
    assert not (van / "images.jsonl").exists()

    res = run(server, "fetch-images", str(out))
    assert res.exit_code == 0, res.output
    imgs = images_by_title(van)
    assert list(imgs) == ["File:Sunflowers vase.jpg"]
    assert imgs["File:Sunflowers vase.jpg"]["caption"] == "Sunflowers in the dump's own caption"
    assert (van / "image_refs.jsonl").exists()  # the references stay as the record
    before = len(server.log)
    res = run(server, "fetch-images", str(out))
    assert res.exit_code == 0 and "unchanged" in res.output
    assert len(server.log) == before  # nothing asked of the server at all


def test_image_rules() -> None:
    def info(title: str, mime: str = "image/jpeg", size: tuple[int, int] = (640, 480), **kw: Any):
        return FileInfo(title, "https://x/a.jpg", mime, size[0], size[1], **kw)

    rules = ImageRules()
    assert rules.reason_to_skip(info("File:Silicon Valley.jpg")) is None  # "icon" inside a word
    assert "skip pattern" in rules.reason_to_skip(info("File:Sound-icon.png"))
    assert "skip pattern" in rules.reason_to_skip(info("File:Commons-logo.png"))
    assert "raster" in rules.reason_to_skip(info("File:Map.svg", "image/svg+xml"))
    assert "raster" in rules.reason_to_skip(info("File:Talk.ogg", "application/ogg"))
    assert "smaller" in rules.reason_to_skip(info("File:Dot.png", size=(40, 400)))
    assert rules.reason_to_skip(info("File:Cover.jpg", non_free=True)) is None
    assert "non-free" in ImageRules(free_only=True).reason_to_skip(
        info("File:C.jpg", non_free=True)
    )
    big = FileInfo("File:B.jpg", "https://x/b.jpg", "image/jpeg", 640, 480, size=11)
    assert "byte cap" in ImageRules(thumb_width=0, max_bytes=10).reason_to_skip(big)
    assert ImageRules(skip_patterns=()).reason_to_skip(info("File:Sound-icon.png")) is None
    with pytest.raises(MMRetrieveError, match="skip-pattern"):
        ImageRules(skip_patterns=("(",))


@pytest.mark.slow
def test_end_to_end_fetch_index_search(
    server: FixtureWiki, tmp_path: Path, minilm_dir: Path, tiny_clip_model_dir: Path
) -> None:
    from mmretrieve import Index

    out = tmp_path / "wiki"
    res = run(server, "fetch", "Batman", "Vincent van Gogh", "Quiet page", "--out", str(out))
    assert res.exit_code == 0, res.output
    idx = Index.open(
        tmp_path / "idx", text_model=str(minilm_dir), image_model=str(tiny_clip_model_dir)
    )
    report = idx.add(out)
    assert not [s for s in report.skipped if "meta.json" in s.path or "images.jsonl" in s.path]

    res = idx.search(text="nocturnal vigil on a gothic gargoyle in the rain", k=5)
    top = res.articles[0]
    assert top.article.id == "wiki:en:Batman" and top.article.title == "Batman"
    caption_hits = [h for h in top.images if "text->image:caption" in h.route_scores]
    assert caption_hits, top.images

    res = idx.search(text="sunflowers in an earthenware vase impasto", k=5)
    assert res.articles[0].article.id == "wiki:en:Vincent_van_Gogh"
    assert any("text->image:caption" in h.route_scores for h in res.articles[0].images)
