"""Dump parsing speed (pages/s) of `mmretrieve wiki dump` on a synthetic but realistic dump.

Builds a pages-articles style XML dump (bz2) of N pages shaped like English Wikipedia articles:
an infobox with an image, a lead with IPA/convert/cite templates and <ref>s, several sections with
links, a wikitable, a gallery, thumbnails with captions, navboxes and categories; sizes vary from
about 3 to 40 KB of wikitext (mean about 12 KB). One page in ten is a redirect, like the real dumps.
Then times the XML stream alone and full ingestion (XML -> text + image refs -> folders) with 1 and
with several worker processes.

    .venv/bin/python bench/wiki_dump_speed.py --pages 3000 --workers 1 2
"""

from __future__ import annotations

import argparse
import bz2
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.wiki_server import export_xml  # noqa: E402

from mmretrieve.wiki.dump import DumpReader, ingest_dump  # noqa: E402

_TEXT = (
    "the of and in to a was is for on as by with he that at from his it an were are which "
    "this also be has or had first new after its their who one two they but been not all "
    "city war season film album team river during school national university world company "
    "history state government population species church music series player family station "
    "village league"
)
WORDS = _TEXT.split()


def sentence(rng: random.Random, links: list[str]) -> str:
    words = rng.choices(WORDS, k=rng.randint(12, 30))
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(words))
        target = rng.choice(links)
        words[i] = f"[[{target}]]" if rng.random() < 0.5 else f"[[{target}|{words[i]}]]"
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), "''" + rng.choice(WORDS) + "''")
    text = " ".join(words).capitalize() + "."
    if rng.random() < 0.6:
        text += (
            f'<ref name="r{rng.randint(1, 50)}">{{{{cite web'
            f" |url=https://example.org/{rng.randint(1, 9999)}"
            f" |title={' '.join(rng.choices(WORDS, k=5))} |publisher=Example |date=May 2020"
            f" |access-date=June 1, 2021}}}}</ref>"
        )
    if rng.random() < 0.1:
        text += "{{citation needed|date=March 2022}}"
    return text


def article(rng: random.Random, n: int) -> str:
    links = [f"Topic {rng.randint(1, 5000)}" for _ in range(40)]
    title = f"Article {n}"
    parts = [
        "{{Short description|An example article}}\n{{Use dmy dates|date=January 2023}}",
        "{{Infobox settlement\n| name = " + title + f"\n| image_skyline = Skyline {n}.jpg\n"
        f"| image_caption = The skyline of {title} at dusk\n| population_total = "
        f"{{{{formatnum:{rng.randint(1000, 900000)}}}}}\n| area_km2 = {rng.randint(1, 900)}\n"
        "| coordinates = {{coord|48|51|N|2|21|E|display=inline,title}}\n}}",
        f"'''{title}''' ({{{{IPAc-en|ˈ|ɑːr|t|ɪ|k|əl}}}}) is a place "
        f"{{{{convert|{rng.randint(1, 99)}|km|mi}}}} from [[{links[0]}]]. "
        + " ".join(sentence(rng, links) for _ in range(rng.randint(2, 5))),
    ]
    for s in range(rng.randint(2, 9)):
        parts.append(f"== Section {s} ==")
        if rng.random() < 0.3:
            parts.append(f"{{{{Main|{rng.choice(links)}}}}}")
        if rng.random() < 0.4:
            parts.append(
                f"[[File:Picture {n} {s}.jpg|thumb|upright=1.2|alt=Alt text {s}|"
                f"A photo of [[{rng.choice(links)}]] in {rng.randint(1900, 2020)}]]"
            )
        for _ in range(rng.randint(1, 3)):
            parts.append(" ".join(sentence(rng, links) for _ in range(rng.randint(2, 6))))
        if rng.random() < 0.3:
            sub = [f"=== Subsection {s}.{k} ===\n" + sentence(rng, links) for k in range(2)]
            parts.extend(sub)
        if rng.random() < 0.2:
            rows = "\n".join(
                f"|-\n| {rng.randint(1900, 2020)} || {rng.choice(WORDS)} || {rng.randint(1, 99)}"
                for _ in range(rng.randint(3, 12))
            )
            parts.append('{| class="wikitable sortable"\n! Year !! Name !! Value\n' + rows + "\n|}")
        if rng.random() < 0.1:
            parts.append(
                "<gallery>\n"
                + "\n".join(f"File:Gallery {n} {g}.jpg|Gallery caption {g}" for g in range(4))
                + "\n</gallery>"
            )
        if rng.random() < 0.3:
            parts.append(
                "\n".join(f"* [[{rng.choice(links)}]] – {rng.choice(WORDS)}" for _ in range(5))
            )
    parts += [
        "== References ==\n{{Reflist}}",
        "== External links ==\n* {{Official website|https://example.org}}\n"
        "* [https://example.org Example]",
        "{{Navbox example}}\n{{Authority control}}",
        "\n".join(f"[[Category:Category {rng.randint(1, 300)}]]" for _ in range(rng.randint(2, 8))),
    ]
    return "\n".join(parts)


def build(path: Path, pages: int, seed: int = 0) -> tuple[int, int]:
    rng = random.Random(seed)
    items, wikitext_bytes = [], 0
    for i in range(pages):
        if i % 10 == 9:
            items.append(
                {
                    "title": f"Redirect {i}",
                    "id": i + 1,
                    "text": "#REDIRECT [[Article 1]]",
                    "redirect": "Article 1",
                }
            )
            continue
        text = article(rng, i)
        wikitext_bytes += len(text.encode())
        items.append({"title": f"Article {i}", "id": i + 1, "text": text})
    path.write_bytes(bz2.compress(export_xml(items).encode(), compresslevel=9))
    return sum(1 for it in items if "redirect" not in it), wikitext_bytes


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the worker processes)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "synthetic-pages-articles.xml.bz2"
        articles, nbytes = build(dump, args.pages)
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"Python {platform.python_version()}"
        )
        print(
            f"dump: {args.pages} pages ({articles} articles, {nbytes / articles / 1024:.1f} KB "
            f"wikitext each on average), {dump.stat().st_size / 1e6:.1f} MB bz2"
        )
        start = time.perf_counter()
        scanned = sum(1 for _ in DumpReader(dump))
        took = time.perf_counter() - start
        print(f"XML stream only (bz2 + iterparse): {scanned / took:,.0f} pages/s")
        for workers in args.workers:
            out = Path(tmp) / f"out-{workers}"
            cpu = _cpu_seconds()
            report = ingest_dump(dump, out, workers=workers)
            cpu = _cpu_seconds() - cpu
            print(
                f"wiki dump, {workers} worker(s): {report.pages_per_s:,.0f} pages/s "
                f"({report.written} articles written in {report.seconds:.1f} s, "
                f"{nbytes / 1e6 / report.seconds:.2f} MB wikitext/s; "
                f"{args.pages / cpu:,.0f} pages per CPU-second, all processes)"
            )


if __name__ == "__main__":
    main()
