"""An offline MediaWiki look-alike for tests: the Action API calls mmretrieve uses, answered in the
documented ``formatversion=2`` JSON shape, plus image bytes, with scripted misbehaviour (429 with
Retry-After, 503 then success, truncated and oversized bodies, SVG served as an image).

Also builds small MediaWiki export XML dumps (``export_xml``).
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

ARTIST_URL = "//commons.wikimedia.org/wiki/User:Example"
EXPORT_NS = "http://www.mediawiki.org/xml/export-0.11/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
PAGE_SIZE = 4  # generator=images answers this many files per response, then "continue"


@dataclass
class FPage:
    title: str
    pageid: int
    revid: int
    extract: str
    wikitext: str
    images: list[str] = field(default_factory=list)
    disambiguation: bool = False


@dataclass
class FFile:
    title: str
    data: bytes
    mime: str
    width: int
    height: int
    description: str | None = None
    served_type: str | None = None  # Content-Type actually sent; default: mime
    mode: str = "ok"  # ok | truncate (short body) | no-length (no Content-Length header)
    license: str = "CC BY-SA 4.0"


@dataclass
class Fail:
    """Answer ``status`` (with ``headers``/``body``) to the next ``times`` matching requests."""

    kind: str  # "api" or "file"
    match: str  # a title in the API call's titles, or a file title
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    when: str = ""  # API only: a substring of the "prop" parameter
    times: int = 1
    body: bytes | None = None


def image_bytes(color: tuple[int, int, int], size: tuple[int, int], fmt: str = "PNG") -> bytes:
    """A small image with a diagonal stripe pattern, so images differ by more than colour."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(img)
    for x in range(-size[1], size[0], 12):
        draw.line(
            [(x, 0), (x + size[1], size[1])], fill=(255 - color[0], 200, color[2] // 2), width=3
        )
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _norm(title: str) -> str:
    title = " ".join(title.replace("_", " ").split())
    if ":" in title:
        ns, _, rest = title.partition(":")
        if ns.lower() in ("file", "image"):
            return "File:" + rest[:1].upper() + rest[1:]
    return title[:1].upper() + title[1:]


class FixtureWiki:
    def __init__(self) -> None:
        self.pages: dict[str, FPage] = {}
        self.redirects: dict[str, str] = {}
        self.files: dict[str, FFile] = {}
        self.fails: list[Fail] = []
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.base_url = ""
        self._server: ThreadingHTTPServer | None = None

    # --- setup ---------------------------------------------------------------------------------
    def add_page(self, page: FPage) -> None:
        self.pages[page.title] = page

    def add_file(self, file: FFile) -> None:
        self.files[file.title] = file

    def file_requests(self, title: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in self.log if e["kind"] == "file" and (title is None or e["name"] == title)
        ]

    def api_requests(self) -> list[dict[str, Any]]:
        return [e for e in self.log if e["kind"] == "api"]

    def start(self) -> str:
        wiki = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                wiki._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- dispatch ------------------------------------------------------------------------------
    def _fail_for(self, kind: str, names: list[str], prop: str = "") -> Fail | None:
        with self.lock:
            for fail in self.fails:
                if (
                    fail.kind == kind
                    and fail.times > 0
                    and fail.match in names
                    and fail.when in prop
                ):
                    fail.times -= 1
                    return fail
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        entry: dict[str, Any] = {
            "path": url.path,
            "params": params,
            "ua": h.headers.get("User-Agent"),
        }
        if url.path == "/w/api.php":
            entry["kind"] = "api"
            titles = [_norm(t) for t in params.get("titles", "").split("|") if t]
            fail = self._fail_for("api", titles, params.get("prop", ""))
            status, headers, body = (
                self._api(params)
                if fail is None
                else (fail.status, fail.headers, fail.body or b"busy")
            )
        elif url.path.startswith("/upload/"):
            entry["kind"] = "file"
            name = "File:" + unquote(url.path.rsplit("/", 1)[1].split("px-", 1)[-1]).replace(
                "_", " "
            )
            entry["name"] = name
            fail = self._fail_for("file", [name])
            if fail is not None:
                status, headers, body = fail.status, fail.headers, fail.body or b"busy"
            else:
                self.log.append({**entry, "status": 200})
                return self._send_file(h, self.files.get(name))
        else:
            entry["kind"] = "other"
            status, headers, body = 404, {}, b"not found"
        with self.lock:
            self.log.append({**entry, "status": status})
        h.send_response(status)
        for key, value in {"Content-Type": "application/json; charset=utf-8", **headers}.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _send_file(self, h: BaseHTTPRequestHandler, f: FFile | None) -> None:
        if f is None:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("Content-Type", f.served_type or f.mime)
        if f.mode == "no-length":
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(f.data)
            h.close_connection = True
            return
        h.send_header("Content-Length", str(len(f.data)))
        h.end_headers()
        if f.mode == "truncate":
            h.wfile.write(f.data[: len(f.data) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(f.data)

    # --- the Action API ------------------------------------------------------------------------
    def _api(self, p: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        def out(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None):
            return status, headers or {}, json.dumps(data).encode()

        wrong = [
            k
            for k, v in (("format", "json"), ("formatversion", "2"), ("maxlag", "5"))
            if p.get(k) != v
        ]
        if wrong or p.get("action") != "query":
            return out({"error": {"code": "fixture-badparams", "info": f"bad or missing: {wrong}"}})
        query: dict[str, Any] = {}
        asked = [t for t in p.get("titles", "").split("|") if t]
        normalized, resolved = [], []
        for title in asked:
            n = _norm(title)
            if n != title:
                normalized.append({"fromencoded": False, "from": title, "to": n})
            resolved.append(n)
        if normalized:
            query["normalized"] = normalized
        if p.get("redirects") == "1":
            hops = [{"from": t, "to": self.redirects[t]} for t in resolved if t in self.redirects]
            if hops:
                query["redirects"] = hops
            resolved = [self.redirects.get(t, t) for t in resolved]
        result: dict[str, Any] = {"batchcomplete": True}
        if p.get("generator") == "images":
            page = self.pages.get(resolved[0]) if resolved else None
            files = page.images if page else []
            start = int(p.get("gimcontinue", "0|0").split("|")[1])
            chunk = files[start : start + PAGE_SIZE]
            query["pages"] = [self._file_page(t, p) for t in chunk]
            if start + PAGE_SIZE < len(files):
                result = {
                    "continue": {
                        "gimcontinue": f"{page.pageid}|{start + PAGE_SIZE}",
                        "continue": "gimcontinue||",
                    }
                }
        else:
            query["pages"] = [self._page(t, p) for t in dict.fromkeys(resolved)]
        if p.get("meta") == "siteinfo":
            query["namespaces"] = {
                "0": {"id": 0, "case": "first-letter", "name": "", "content": True},
                "6": {"id": 6, "case": "first-letter", "name": "File", "canonical": "File"},
                "14": {
                    "id": 14,
                    "case": "first-letter",
                    "name": "Category",
                    "canonical": "Category",
                },
            }
            query["namespacealiases"] = [{"id": 6, "alias": "Image"}]
        return out({**result, "query": query})

    def _page(self, title: str, p: dict[str, str]) -> dict[str, Any]:
        if title.startswith("File:"):
            return self._file_page(title, p)
        if "|" in title or "[" in title:
            return {
                "title": title,
                "invalidreason": "The requested page title contains invalid characters",
                "invalid": True,
            }
        page = self.pages.get(title)
        if page is None:
            return {"ns": 0, "title": title, "missing": True}
        props = p.get("prop", "").split("|")
        data: dict[str, Any] = {"pageid": page.pageid, "ns": 0, "title": page.title}
        if "info" in props:
            data.update(
                contentmodel="wikitext",
                pagelanguage="en",
                lastrevid=page.revid,
                length=len(page.wikitext),
            )
            if "url" in p.get("inprop", ""):
                data["fullurl"] = f"{self.base_url}/wiki/{quote(page.title.replace(' ', '_'))}"
        if "pageprops" in props and page.disambiguation:
            data["pageprops"] = {"disambiguation": ""}
        if "extracts" in props:
            ok = p.get("explaintext") == "1" and p.get("exsectionformat") == "wiki"
            data["extract"] = page.extract if ok else f"<p>{page.extract}</p>"
        if "revisions" in props and "content" in p.get("rvprop", "") and p.get("rvslots") == "main":
            data["revisions"] = [
                {
                    "revid": page.revid,
                    "parentid": page.revid - 1,
                    "timestamp": "2024-05-01T12:00:00Z",
                    "slots": {
                        "main": {
                            "contentmodel": "wikitext",
                            "contentformat": "text/x-wiki",
                            "content": page.wikitext,
                        }
                    },
                }
            ]
        return data

    def _file_page(self, title: str, p: dict[str, str]) -> dict[str, Any]:
        f = self.files.get(title)
        if f is None:
            return {"ns": 6, "title": title, "missing": True}
        name = quote(title.split(":", 1)[1].replace(" ", "_"))
        info: dict[str, Any] = {
            "size": len(f.data),
            "width": f.width,
            "height": f.height,
            "url": f"{self.base_url}/upload/{name}",
            "descriptionurl": f"{self.base_url}/wiki/File:{name}",
            "descriptionshorturl": f"{self.base_url}/w/index.php?curid=1",
            "mime": f.mime,
        }
        width = int(p.get("iiurlwidth", "0") or 0)
        if width:
            if f.width > width:
                info.update(
                    thumburl=f"{self.base_url}/upload/thumb/{width}px-{name}",
                    thumbwidth=width,
                    thumbheight=f.height * width // f.width,
                )
            else:
                info.update(thumburl=info["url"], thumbwidth=f.width, thumbheight=f.height)
        if "extmetadata" in p.get("iiprop", ""):
            meta = {
                "LicenseShortName": {
                    "value": f.license,
                    "source": "commons-desc-page",
                    "hidden": "",
                },
                "LicenseUrl": {
                    "value": "https://creativecommons.org/licenses/by-sa/4.0",
                    "source": "commons-desc-page",
                },
                "Artist": {
                    "value": f'<a href="{ARTIST_URL}">Example Photographer</a>',
                    "source": "commons-desc-page",
                },
            }
            if f.description:
                meta["ImageDescription"] = {
                    "value": f'<div class="description en">{f.description}</div>',
                    "source": "commons-desc-page",
                }
            wanted = p.get("iiextmetadatafilter")
            if wanted:
                meta = {k: v for k, v in meta.items() if k in wanted.split("|")}
            info["extmetadata"] = meta
        return {
            "ns": 6,
            "title": title,
            "missing": True,
            "known": True,
            "imagerepository": "shared",
            "imageinfo": [info],
        }


# --- the standard fixture content --------------------------------------------------------------

GARGOYLE_CAPTION = "Batman keeps a nocturnal vigil on a gothic gargoyle above the rain-soaked city"
SUNFLOWER_CAPTION = "Sunflowers arranged in a yellow earthenware vase, painted with thick impasto"
SIGNAL_DESCRIPTION = "The <b>bat-signal</b> searchlight projected onto low clouds &amp; smoke"

BATMAN_WIKITEXT = f"""{{{{Short description|Fictional superhero}}}}
{{{{Infobox comics character
| image = Batman cowl portrait.jpg
| caption = Portrait of the cowl worn in the 1989 film
}}}}
'''Batman''' is a [[superhero]] created by [[Bob Kane]].<ref>{{{{cite web|url=http://x}}}}</ref>
== Publication history ==
[[File:Gargoyle vigil.jpg|thumb|upright|alt=A caped figure crouching on stone|{GARGOYLE_CAPTION}]]
Batman first appeared in ''[[Detective Comics]]'' #27 in 1939.
== See also ==
{{{{Reflist}}}}
[[Category:Superheroes]]
"""
BATMAN_EXTRACT = (
    "Batman is a superhero created by Bob Kane and Bill Finger.\n\n"
    "== Publication history ==\nBatman first appeared in Detective Comics #27 in 1939.\n\n"
    "=== Golden Age ===\nThe character soon received his own title.\n\n"
    "== See also ==\n"
)


def standard_wiki() -> FixtureWiki:
    """Pages and files covering every case the fetcher must handle."""
    w = FixtureWiki()
    w.add_page(
        FPage(
            "Batman",
            100,
            1001,
            BATMAN_EXTRACT,
            BATMAN_WIKITEXT,
            images=[
                "File:Bat signal searchlight.png",
                "File:Batman cowl portrait.jpg",
                "File:Broken cowl.jpg",
                "File:Commons-logo.svg",
                "File:Disguised vector.png",
                "File:Gargoyle vigil.jpg",
                "File:Huge cape.jpg",
                "File:Tiny bat.png",
                "File:Wikiquote-logo.png",
            ],
        )
    )
    w.redirects["Bat-Man"] = "Batman"
    w.add_page(
        FPage(
            "Vincent van Gogh",
            200,
            2001,
            "Vincent van Gogh was a Dutch painter.\n\n== Works ==\n"
            "He painted sunflowers and night skies.",
            "'''Vincent van Gogh''' was a Dutch painter.\n"
            f"[[File:Sunflowers vase.jpg|thumb|{SUNFLOWER_CAPTION}]]\n<gallery>\n"
            "File:Starry night swirl.png|Swirling cypress under a turbulent starry night sky\n"
            "</gallery>\n",
            images=["File:Starry night swirl.png", "File:Sunflowers vase.jpg"],
        )
    )
    w.add_page(
        FPage(
            "Mercury",
            300,
            3001,
            "Mercury may refer to: the planet, the element.",
            "'''Mercury''' may refer to:\n{{disambiguation}}",
            disambiguation=True,
        )
    )
    w.add_page(
        FPage(
            "Quiet page",
            400,
            4001,
            "A page with words only.\n\n== Details ==\nNothing to see.",
            "A page with words only.",
        )
    )
    w.add_page(FPage("Throttled page", 500, 5001, "This page is popular.", "This page is popular."))
    w.add_page(FPage("Server hiccup", 600, 6001, "This page lives on a flaky server.", "Flaky."))
    w.fails.append(Fail("api", "Throttled page", 429, {"Retry-After": "1"}))
    w.fails.append(Fail("api", "Server hiccup", 503, when="extracts"))
    w.fails.append(Fail("file", "File:Starry night swirl.png", 503))

    jpg = lambda c, s=(160, 120): image_bytes(c, s, "JPEG")  # noqa: E731
    png = lambda c, s=(160, 120): image_bytes(c, s, "PNG")  # noqa: E731
    w.add_file(FFile("File:Gargoyle vigil.jpg", jpg((40, 40, 60)), "image/jpeg", 160, 120))
    w.add_file(
        FFile(
            "File:Batman cowl portrait.jpg", jpg((20, 20, 20), (120, 160)), "image/jpeg", 120, 160
        )
    )
    w.add_file(
        FFile(
            "File:Bat signal searchlight.png",
            png((250, 220, 40)),
            "image/png",
            160,
            120,
            description=SIGNAL_DESCRIPTION,
        )
    )
    w.add_file(
        FFile("File:Broken cowl.jpg", jpg((90, 10, 10)), "image/jpeg", 160, 120, mode="truncate")
    )
    w.add_file(
        FFile(
            "File:Huge cape.jpg",
            jpg((10, 90, 10), (1200, 900)) + b"\0" * 200_000,
            "image/jpeg",
            1200,
            900,
            mode="no-length",
        )
    )
    w.add_file(
        FFile(
            "File:Commons-logo.svg",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "image/svg+xml",
            400,
            400,
        )
    )
    w.add_file(
        FFile(
            "File:Disguised vector.png",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "image/png",
            300,
            300,
            served_type="image/svg+xml",
        )
    )
    w.add_file(FFile("File:Tiny bat.png", png((0, 0, 0), (16, 16)), "image/png", 16, 16))
    w.add_file(
        FFile("File:Wikiquote-logo.png", png((200, 0, 0), (150, 150)), "image/png", 150, 150)
    )
    w.add_file(FFile("File:Sunflowers vase.jpg", jpg((230, 180, 20)), "image/jpeg", 160, 120))
    w.add_file(FFile("File:Starry night swirl.png", png((20, 40, 160)), "image/png", 160, 120))
    return w


# --- MediaWiki export XML ----------------------------------------------------------------------


def export_xml(
    pages: list[dict[str, Any]],
    *,
    dbname: str = "enwiki",
    base: str = "https://en.wikipedia.org/wiki/Main_Page",
) -> str:
    """A ``pages-articles`` style export: each page dict has title, id, text, and optionally ns,
    revid and redirect (target title)."""
    head = f"""<mediawiki xmlns="{EXPORT_NS}" xmlns:xsi="{XSI}" version="0.11" xml:lang="en">
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>{dbname}</dbname>
    <base>{base}</base>
    <generator>MediaWiki 1.42.0-wmf.5</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="-2" case="first-letter">Media</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Talk</namespace>
      <namespace key="6" case="first-letter">File</namespace>
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
"""
    body = []
    for p in pages:
        redirect = (
            f'\n    <redirect title="{escape(p["redirect"])}" />' if p.get("redirect") else ""
        )
        revid = p.get("revid", p["id"] * 10)
        text = escape(p["text"])
        body.append(f"""  <page>
    <title>{escape(p["title"])}</title>
    <ns>{p.get("ns", 0)}</ns>
    <id>{p["id"]}</id>{redirect}
    <revision>
      <id>{revid}</id>
      <parentid>{revid - 1}</parentid>
      <timestamp>2024-04-15T14:38:04Z</timestamp>
      <contributor><username>Example</username><id>1</id></contributor>
      <comment>edit</comment>
      <origin>{revid}</origin>
      <model>wikitext</model>
      <format>text/x-wiki</format>
      <text bytes="{len(p["text"].encode())}" sha1="x" xml:space="preserve">{text}</text>
      <sha1>x</sha1>
    </revision>
  </page>
""")
    return head + "".join(body) + "</mediawiki>\n"
