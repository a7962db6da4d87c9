"""The web page in a real browser: Debian's chromium driven by Playwright's Python package.

Starts ``mmretrieve serve`` as a subprocess on a free loopback port over a small index (three
wiki_tutorial articles and their images, embedded with the tiny RANDOM test models, so only the
exact-image match and BM25 carry meaning), types a query, attaches a Batman picture, submits
with the keyboard and checks the Batman card with its thumbnail. Needs: ``apt-get install
chromium`` and ``pip install playwright`` (no browser download: the system chromium is used).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("fastapi", reason="the server extra is not installed")
pytest.importorskip("uvicorn", reason="the server extra is not installed")
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright's Python package is not installed (pip install playwright)",
)
CHROMIUM = os.environ.get("MMRETRIEVE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True
    )

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTICLES = {  # id -> (title, url, image ids)
    "abonia:batman": (
        "Batman",
        "https://en.wikipedia.org/wiki/Batman",
        ["abonia_16", "abonia_18", "abonia_19"],
    ),
    "sarthak:The Matrix": (
        "The Matrix",
        "https://en.wikipedia.org/wiki/The_Matrix",
        ["sarthak_41"],
    ),
    "akshath:Nosferatu": ("Nosferatu", "https://en.wikipedia.org/wiki/Nosferatu", ["akshath_14"]),
}
QUERY_IMAGE = "abonia_19"  # a Batman drawing, also indexed under the Batman article
SECTION = "Fictional character biography"  # a Batman section the query picture is placed in
LANGS = {"abonia:batman": "en", "sarthak:The Matrix": "en", "akshath:Nosferatu": "de"}


def _small_corpus(wiki: Path, out: Path) -> Path:
    """A JSONL corpus: the first 4,000 characters of three articles and their images."""
    (out / "images").mkdir(parents=True)
    texts = {}
    for line in (wiki / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["id"] in ARTICLES:
            texts[row["id"]] = row["text"][:4000]
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for article_id, (title, url, _) in ARTICLES.items():
            text = texts[article_id]
            if article_id == "abonia:batman":
                text += f"\n\n== {SECTION} ==\nBruce Wayne watches over Gotham as a bat man."
            row = {"id": article_id, "title": title, "url": url, "text": text,
                   "lang": LANGS[article_id]}  # fmt: skip
            fh.write(json.dumps(row) + "\n")
    with (out / "images.jsonl").open("w", encoding="utf-8") as fh:
        for article_id, (_, _, images) in ARTICLES.items():
            for image_id in images:
                src = next((wiki / "images").glob(f"{image_id}.*"))
                shutil.copy(src, out / "images" / src.name)
                row = {"id": image_id, "file": f"images/{src.name}", "article_id": article_id}
                if image_id == QUERY_IMAGE:
                    row["section"] = SECTION
                fh.write(json.dumps(row) + "\n")
        # The query picture is used by a second article too (the same file, another row).
        name = next((wiki / "images").glob(f"{QUERY_IMAGE}.*")).name
        row = {"id": "shared_copy", "file": f"images/{name}", "article_id": "akshath:Nosferatu"}
        fh.write(json.dumps(row) + "\n")
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_command() -> list[str]:
    from mmretrieve.interfaces import cli

    if "serve" in getattr(cli.main, "commands", {}):
        return [sys.executable, "-m", "mmretrieve.interfaces.cli", "serve"]
    return [sys.executable, "-m", "mmretrieve.interfaces.cli_serve"]  # before it is registered


@pytest.fixture(scope="module")
def server(
    tmp_path_factory, wiki_tutorial_dir, tiny_text_model_dir, tiny_clip_model_dir
) -> Iterator[str]:
    from mmretrieve import Index

    base = tmp_path_factory.mktemp("web")
    corpus = _small_corpus(wiki_tutorial_dir, base / "corpus")
    with Index.open(
        base / "idx", text_model=str(tiny_text_model_dir), image_model=str(tiny_clip_model_dir)
    ) as index:
        report = index.add(corpus)
        assert report.skipped == [] and report.images_added == 6  # 5 pictures, one in two articles
    port = _free_port()
    log = (base / "server.log").open("w")
    cmd = _serve_command() + [
        "--index",
        str(base / "idx"),
        "--port",
        str(port),
        "--thumbnail-cache",
        str(base / "thumbs"),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail("serve exited early:\n" + (base / "server.log").read_text())
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    "serve did not answer /health in 90 s:\n" + (base / "server.log").read_text()
                )
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def test_combined_query_shows_batman_card(
    server: str, browser, wiki_tutorial_dir: Path, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server + "/")
    # (expect/evaluate, not wait_for_function: the page's CSP forbids the eval that needs)
    sync_api.expect(page.locator("#index-info")).to_contain_text("3 articles")

    page.focus("#drop-zone")
    page.keyboard.press("/")  # keyboard shortcut back to the search box
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("Bat man")
    query_image = next((wiki_tutorial_dir / "images").glob(f"{QUERY_IMAGE}.*"))
    page.set_input_files("#image-input", str(query_image))
    sync_api.expect(page.locator("#image-preview")).to_be_visible()
    page.focus("#q")
    page.keyboard.press("Enter")

    card = page.locator('article.card[data-article-id="abonia:batman"]')
    card.wait_for(timeout=60_000)
    sync_api.expect(card.locator("h2 a")).to_have_text("Batman")
    assert card.locator("h2 a").get_attribute("href") == "https://en.wikipedia.org/wiki/Batman"
    assert page.locator("article.card").first.get_attribute("data-article-id") == "abonia:batman"
    thumb = card.locator(".thumbs img").first
    thumb.wait_for()
    deadline = time.monotonic() + 30
    while not thumb.evaluate("img => img.complete && img.naturalWidth > 0"):
        assert time.monotonic() < deadline, "thumbnail did not load"
        time.sleep(0.1)
    assert card.locator("figcaption").first.inner_text().startswith("score ")
    # The picture two articles use says so, in each article that shows it.
    sync_api.expect(card.locator("figcaption", has_text="in 2 articles")).to_have_count(1)
    # Why this result: the article's confidence and what each route added to its score.
    assert "confidence" in card.locator(".card-head .score").inner_text()
    why = card.locator(".article-why").inner_text()
    assert why.startswith("why: ") and "image->image +" in why
    assert card.locator(".passages mark").count() > 0  # query words highlighted
    assert "RANDOM" in page.locator("#warnings").inner_text()  # tiny random models are flagged
    assert page.locator("#api-key-box").is_hidden() and page.locator("#error").is_hidden()

    shot = tmp_path / "search.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    if os.environ.get("MMRETRIEVE_SCREENSHOT_DIR"):  # keep a copy to look at
        shutil.copy(shot, Path(os.environ["MMRETRIEVE_SCREENSHOT_DIR"]) / shot.name)

    page.check('input[name="view"][value="flat"]')  # the flat list of passages and images
    sync_api.expect(page.locator("ol.flat li").first).to_be_visible()
    kinds = page.locator("ol.flat .kind").all_inner_texts()
    assert kinds and {k.lower() for k in kinds} <= {"passage", "image"}
    # ... and the flat list shows that picture once.
    sync_api.expect(page.locator("ol.flat .shared", has_text="in 2 articles")).to_have_count(1)

    # By section: the Batman card's sections, the query picture in the section that places it.
    page.check('input[name="view"][value="sections"]')
    part = card.locator(f'section.article-section[data-section="{SECTION}"]')
    sync_api.expect(part.locator("h3")).to_contain_text(SECTION)
    sync_api.expect(part.locator(".thumbs img")).not_to_have_count(0)
    sync_api.expect(part.locator("figcaption", has_text="in 2 articles")).to_have_count(1)
    assert card.locator("section.article-section").count() >= 2

    # A filter: only the English articles (a meta field of the JSONL corpus).
    page.fill("#filters", "lang=en")
    page.focus("#q")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#status")).to_contain_text("articles")
    sync_api.expect(
        page.locator('article.card[data-article-id="akshath:Nosferatu"]')
    ).to_have_count(0)
    sync_api.expect(page.locator('article.card[data-article-id="abonia:batman"]')).to_have_count(1)
    page.fill("#filters", "year=1922")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#error")).to_contain_text(
        "no indexed article has the field 'year'"
    )
    assert errors == []
    page.close()


def test_min_score_answers_nothing_relevant(server: str, browser) -> None:
    page = browser.new_page()
    page.goto(server + "/")
    sync_api.expect(page.locator("#index-info")).to_contain_text("3 articles")
    page.select_option("#min-score", "0.8")
    page.fill("#q", "zqxv wibble frobnicate")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#results .empty")).to_contain_text("Nothing relevant")
    page.select_option("#min-score", "")  # off: the closest matches come back
    page.click("#submit")
    sync_api.expect(page.locator("article.card").first).to_be_visible()
    page.close()


def test_error_messages(server: str, browser, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(server + "/")
    page.click("#submit")  # nothing to search with
    sync_api.expect(page.locator("#error")).to_contain_text("Type some words")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    page.set_input_files("#image-input", str(bad))
    page.click("#submit")
    sync_api.expect(page.locator("#error")).to_contain_text("not an image")
    page.focus("#drop-zone")
    page.keyboard.press("Escape")  # removes the image from the keyboard
    sync_api.expect(page.locator("#image-preview")).to_be_hidden()
    page.close()


def test_empty_index_and_api_key_messages(server: str, browser) -> None:
    """The page's answers to an empty index and to a server that wants a key (both simulated
    by intercepting the API responses in the browser)."""
    page = browser.new_page()
    empty = {"counts": {"articles": 0, "passages": 0, "images": 0}, "warnings": []}
    page.route("**/stats", lambda route: route.fulfill(json=empty))
    page.goto(server + "/")
    sync_api.expect(page.locator("#results .empty")).to_contain_text("This index is empty")
    page.unroute("**/stats")

    def needs_key(route) -> None:
        if route.request.headers.get("x-api-key") == "k3y":
            route.continue_()
        else:
            route.fulfill(status=401, json={"detail": "missing or wrong API key"})

    page.route("**/search", needs_key)
    page.fill("#q", "Nosferatu vampire")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#error")).to_contain_text("needs an API key")
    sync_api.expect(page.locator("#api-key")).to_be_focused()
    page.keyboard.type("k3y")
    page.click("#save-key")
    page.keyboard.press("Enter")  # focus is back in the search box
    sync_api.expect(
        page.locator('article.card[data-article-id="akshath:Nosferatu"]')
    ).to_be_visible()
    sync_api.expect(page.locator("#error")).to_be_hidden()
    page.close()
