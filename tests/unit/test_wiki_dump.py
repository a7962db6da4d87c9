"""Wikitext conversion, safe folder names and streaming dump ingestion (no network)."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("mwparserfromhell")

from tests.wiki_server import export_xml  # noqa: E402

from mmretrieve.errors import BadInputError, UsageError  # noqa: E402
from mmretrieve.interfaces.cli_wiki import wiki  # noqa: E402
from mmretrieve.wiki.dump import DumpReader, ingest_dump  # noqa: E402
from mmretrieve.wiki.output import folder_name, image_file_name, read_json, read_jsonl  # noqa: E402
from mmretrieve.wiki.text import convert_wikitext  # noqa: E402

BATMAN = """{{Short description|Fictional superhero}}
{{Use mdy dates|date=May 2024}}
{{Infobox comics character
| image = Batman Detective Comics 27.jpg
| caption = Cover of ''[[Detective Comics]]'' #27 (May 1939)
| alt = A man in a bat costume swinging over rooftops
| publisher = [[DC Comics]]
}}
'''Batman''' ({{IPAc-en|ˈ|b|æ|t|m|æ|n}}) is a [[superhero]] appearing in [[American comic book]]s \
published by [[DC Comics|DC]].<ref name="dc">{{cite web|url=http://dc.com|title=DC}}</ref> He is \
{{convert|6|ft}} tall.<ref>Plain ref text that must vanish.</ref>
[[File:Batman gargoyle.jpg|thumb|upright=1.2|left|alt=Dark figure on stone|Batman crouches on a \
[[gargoyle]] above [[Gotham City|Gotham]]]]
__TOC__
== Publication history ==
=== Creation ===
[[Bob Kane]] created the character in 1939.<ref name="dc"/>
{| class="wikitable"
! Year !! Title
|-
| 1939 || Secret table cell
|}
<gallery>
File:Bat signal.png|The [[bat-signal]] searchlight
Batmobile_1989.jpg|The 1989 Batmobile
</gallery>
<!-- hidden editor comment -->
== See also ==
== References ==
{{Reflist}}
== External links ==
* [http://dc.com Official website]
{{Batman navbox}}
[[Category:DC Comics superheroes]]
[[de:Batman]]
"""

TEMPLATE_HEAVY = """{{Infobox settlement|name=Nowhere|image_skyline=Nowhere skyline.jpg|\
image_caption=Skyline at dusk|population={{formatnum:1234}}|{{nested|{{deeper|x}}}}}}
{{Multiple image|image1=Left view.jpg|caption1=The left view|alt1=left alt|image2=Right view.png|\
caption2=The right view}}
'''Nowhere''' is a town{{efn|A footnote.}}{{sfn|Smith|2001|p=4}} in {{lang|fr|Quelque part}}.
{{Main|Somewhere}}
== Geography ==
{{Climate chart|a|b|c}}
It lies on a {{convert|12|km}} long river.{{citation needed|date=May 2024}}
"""


def test_wikitext_to_text_keeps_prose_headings_and_link_text() -> None:
    conv = convert_wikitext(BATMAN)
    text = conv.text
    assert text.startswith(
        "Batman is a superhero appearing in American comic books published by DC."
    )
    assert "He is 6 ft tall." in text
    assert "== Publication history ==" in text.splitlines()
    assert "=== Creation ===" in text.splitlines()
    assert "Bob Kane created the character in 1939." in text
    for junk in (
        "{{",
        "}}",
        "[[",
        "<ref",
        "Plain ref text",
        "Secret table cell",
        "wikitable",
        "__TOC__",
        "hidden editor comment",
        "Category",
        "de:Batman",
        "IPA",
        "()",
    ):
        assert junk not in text, junk
    assert "See also" not in text and "References" not in text  # empty sections dropped
    assert "== External links ==" in text and "Official website" in text
    assert not conv.disambiguation


def test_image_references_carry_captions_alt_text_and_section() -> None:
    refs = convert_wikitext(BATMAN).refs
    # The section each image is placed in: the heading above it (None: the lead).
    assert [r.section for r in refs] == [None, None, "Creation", "Creation"]
    assert [(r.title, r.caption, r.alt_text) for r in refs] == [
        (
            "File:Batman Detective Comics 27.jpg",
            "Cover of Detective Comics #27 (May 1939)",
            "A man in a bat costume swinging over rooftops",
        ),
        (
            "File:Batman gargoyle.jpg",
            "Batman crouches on a gargoyle above Gotham",
            "Dark figure on stone",
        ),
        ("File:Bat signal.png", "The bat-signal searchlight", None),
        ("File:Batmobile 1989.jpg", "The 1989 Batmobile", None),
    ]


def test_template_heavy_page() -> None:
    conv = convert_wikitext(TEMPLATE_HEAVY)
    assert conv.text.splitlines()[0] == "Nowhere is a town in Quelque part."
    assert "It lies on a 12 km long river." in conv.text
    assert "{" not in conv.text and "}" not in conv.text and "footnote" not in conv.text
    assert [(r.title, r.caption, r.alt_text) for r in conv.refs] == [
        ("File:Nowhere skyline.jpg", "Skyline at dusk", None),
        ("File:Left view.jpg", "The left view", "left alt"),
        ("File:Right view.png", "The right view", None),
    ]


def test_file_link_without_caption_and_localised_namespace() -> None:
    from mmretrieve.wiki.text import Namespaces

    conv = convert_wikitext("[[Datei:Bild.jpg|mini|200px]] Text.", Namespaces(frozenset({"datei"})))
    assert conv.refs[0].title == "File:Bild.jpg" and conv.refs[0].caption is None
    assert conv.text == "Text."
    assert (
        convert_wikitext("[[:File:Shown.jpg|a link]] to a file page.").text
        == "a link to a file page."
    )


def test_malformed_refs_and_comments_do_not_swallow_text() -> None:
    text = convert_wikitext("A <ref>never closed. More prose.<ref>x</ref> End. <!-- open").text
    assert text == "A never closed. More prose. End."
    assert convert_wikitext("B<ref name=a>{{cite|x}}</ref>, c<ref name=a/>.").text == "B, c."


def test_disambiguation_detected() -> None:
    assert convert_wikitext(
        "'''Mercury''' may refer to:\n* [[Mercury (planet)]]\n{{Disambiguation}}"
    ).disambiguation
    assert convert_wikitext("x {{Hndis|Smith, John}}").disambiguation
    assert convert_wikitext("x {{Place name disambiguation}}").disambiguation
    assert not convert_wikitext("Not one. {{Infobox person}}").disambiguation


def test_folder_names_are_safe_unique_and_deterministic() -> None:
    titles = [
        "Batman",
        "Red Dwarf",
        "Red dwarf",
        "AC/DC",
        "AC_DC",
        "Mercury (planet)",
        "C++",
        "C",
        ".hack",
        "Who? What!",
        "CON",
        "Ünïcödé – title",
        "x" * 400,
        "x" * 401,
    ]
    names = [folder_name("en", t) for t in titles]
    assert len(set(names)) == len(titles)
    assert len({n.lower() for n in names}) == len(titles)  # case-insensitive filesystems too
    for name in names:
        assert "/" not in name and "\\" not in name and not name.startswith(".")
        assert len(name.encode()) <= 140 and all(c not in name for c in ':*?"<>| ')
    assert names == [folder_name("en", t) for t in titles]
    assert folder_name("en", "Batman").startswith("Batman-")
    assert folder_name("en", "Vincent van Gogh") == folder_name("en", "Vincent_van_Gogh")
    assert folder_name("en", "AC DC") == folder_name("en", "AC_DC")  # one title in MediaWiki
    assert folder_name("en", "Batman") != folder_name("de", "Batman")
    assert image_file_name("File:Sunflowers vase.JPG", "image/jpeg").endswith(".jpg")
    assert image_file_name("File:Scan.tif", "image/jpeg").endswith(".jpg")  # thumbnail of a TIFF


def _dump_pages() -> list[dict]:
    return [
        {"title": "Batman", "id": 1, "text": BATMAN},
        {"title": "Bat-Man", "id": 2, "text": "#REDIRECT [[Batman]]", "redirect": "Batman"},
        {"title": "Talk:Batman", "id": 3, "ns": 1, "text": "Discussion about [[Batman]]."},
        {"title": "Mercury", "id": 4, "text": "'''Mercury''' may refer to:\n{{disambiguation}}"},
        {"title": "Nowhere", "id": 5, "text": TEMPLATE_HEAVY},
        {"title": "Only templates", "id": 6, "text": "{{Infobox|a=b}}{{Navbox}}"},
        {"title": "AC/DC", "id": 7, "text": "'''AC/DC''' are a rock band & more <from> Australia."},
    ]


@pytest.fixture
def dumps(tmp_path: Path) -> dict[str, Path]:
    xml = export_xml(_dump_pages())
    plain = tmp_path / "pages.xml"
    plain.write_text(xml, encoding="utf-8")
    packed = tmp_path / "pages-articles.xml.bz2"
    packed.write_bytes(bz2.compress(xml.encode()))
    gz = tmp_path / "pages.xml.gz"
    gz.write_bytes(gzip.compress(xml.encode()))
    return {"plain": plain, "bz2": packed, "gz": gz}


def _snapshot(out: Path) -> dict[str, str]:
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if path.name == "meta.json":
                meta = json.loads(text)
                meta.pop("fetched_at")
                meta.pop("dump")
                text = json.dumps(meta, sort_keys=True)
            files[str(path.relative_to(out))] = text
    return files


def test_ingest_dump_writes_articles_and_skips_the_rest(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report = ingest_dump(dumps["plain"], out)
    assert report.scanned == 7 and report.written == 3
    assert report.skipped == {
        "redirect": 1,
        "not an article namespace": 1,
        "disambiguation page": 1,
        "empty after markup removal": 1,
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(
        folder_name("en", t) for t in ("Batman", "Nowhere", "AC/DC")
    )
    bat = out / folder_name("en", "Batman")
    meta = read_json(bat / "meta.json")
    assert meta is not None
    assert meta["id"] == "wiki:en:Batman" and meta["source"] == "wikipedia-dump"
    assert meta["url"] == "https://en.wikipedia.org/wiki/Batman"
    assert meta["page_id"] == 1 and meta["revision_id"] == 10 and meta["license"] == "CC BY-SA 4.0"
    assert (bat / "article.txt").read_text(encoding="utf-8").startswith("Batman is a superhero")
    refs = read_jsonl(bat / "image_refs.jsonl")
    assert refs[1] == {
        "title": "File:Batman gargoyle.jpg",
        "caption": "Batman crouches on a gargoyle above Gotham",
        "alt_text": "Dark figure on stone",
        "section": None,
    }
    assert refs[2]["section"] == "Creation"
    assert not (bat / "images.jsonl").exists()
    acdc = out / folder_name("en", "AC/DC")
    assert read_json(acdc / "meta.json")["url"] == "https://en.wikipedia.org/wiki/AC/DC"
    assert "rock band & more <from> Australia" in (acdc / "article.txt").read_text(encoding="utf-8")
    assert report.pages_per_s > 0


def test_bz2_gzip_and_workers_give_identical_output(dumps: dict[str, Path], tmp_path: Path) -> None:
    ingest_dump(dumps["plain"], tmp_path / "a")
    ingest_dump(dumps["bz2"], tmp_path / "b")
    ingest_dump(dumps["gz"], tmp_path / "c", workers=2)
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b") == _snapshot(tmp_path / "c")


def test_rerun_is_idempotent_and_newer_revisions_replace(
    dumps: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ingest_dump(dumps["bz2"], out)
    stamp = (out / folder_name("en", "Batman") / "meta.json").stat().st_mtime_ns
    again = ingest_dump(dumps["bz2"], out)
    assert again.written == 0 and again.unchanged == 3
    assert (out / folder_name("en", "Batman") / "meta.json").stat().st_mtime_ns == stamp

    pages = _dump_pages()
    pages[0] = {"title": "Batman", "id": 1, "revid": 99, "text": "'''Batman''' was rewritten."}
    newer = tmp_path / "newer.xml"
    newer.write_text(export_xml(pages), encoding="utf-8")
    report = ingest_dump(newer, out)
    assert report.written == 1 and report.unchanged == 2
    bat = out / folder_name("en", "Batman")
    assert (bat / "article.txt").read_text(encoding="utf-8") == "Batman was rewritten.\n"
    assert read_json(bat / "meta.json")["revision_id"] == 99
    assert not (bat / "image_refs.jsonl").exists()  # no images any more


def test_limit_counts_articles(dumps: dict[str, Path], tmp_path: Path) -> None:
    report = ingest_dump(dumps["plain"], tmp_path / "out", limit=2, workers=2)
    assert report.written == 2
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_reader_is_namespace_agnostic_and_streams(tmp_path: Path) -> None:
    xml = export_xml(_dump_pages()).replace(
        ' xmlns="http://www.mediawiki.org/xml/export-0.11/"', ""
    )
    path = tmp_path / "nons.xml"
    path.write_text(xml, encoding="utf-8")
    reader = DumpReader(path)
    pages = list(reader)
    assert [p.title for p in pages][:2] == ["Batman", "Bat-Man"] and pages[1].redirect
    assert reader.siteinfo.dbname == "enwiki" and reader.siteinfo.namespaces[6] == "File"


def test_bad_dumps_are_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml.bz2"
    broken.write_bytes(bz2.compress(export_xml(_dump_pages()).encode())[:300])
    with pytest.raises(BadInputError, match="not a readable MediaWiki XML dump"):
        ingest_dump(broken, tmp_path / "out")
    nolang = tmp_path / "nolang.xml"
    nolang.write_text(export_xml(_dump_pages(), dbname="", base=""), encoding="utf-8")
    with pytest.raises(UsageError, match="--lang"):
        ingest_dump(nolang, tmp_path / "out2")
    assert ingest_dump(nolang, tmp_path / "out3", lang="xx").written == 3


def test_dump_cli(dumps: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(
        wiki, ["dump", str(dumps["bz2"]), "--out", str(out), "--limit", "10", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert "3 articles written" in res.output and "pages/s" in res.output
    res = CliRunner().invoke(
        wiki,
        ["dump", str(dumps["bz2"]), "--out", str(out), "--json", "--no-progress", "--workers", "1"],
    )
    data = json.loads(res.output)
    assert data["written"] == 0 and data["unchanged"] == 3 and data["scanned"] == 7
