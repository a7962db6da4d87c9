"""Wikitext -> plain text, keeping headings as ``== Heading ==`` lines and collecting image refs.

Parsing is done by mwparserfromhell: templates, references, tables and comments are dropped, link
text is kept, and ``[[File:...|...|caption]]`` links, gallery lines and infobox ``image =``
parameters become :class:`ImageRef` s with the caption the article gives them. The rule lists below
(disambiguation templates, templates whose text is kept, tags dropped) are defaults, not special
cases: callers can pass their own disambiguation list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import require


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DEFAULT_DISAMBIG_TEMPLATES = _words(
    "disambiguation disambig dab disamb hndis geodis numberdis letter-numbercombdisambig"
)
# Templates whose visible text is worth keeping: name -> positional parameters shown, joined by " ".
INLINE_TEMPLATES: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(_words("nowrap nobr small big ill math mvar abbr"), (1,)),
    **dict.fromkeys(_words("lang transl"), (2,)),
    **dict.fromkeys(_words("convert cvt"), (1, 2)),
}
_DROP_TAGS = _words(
    "ref references math chem ce score timeline templatestyles syntaxhighlight source graph"
    " mapframe maplink imagemap hiero table noinclude includeonly style script indicator section"
    " categorytree"
)
_BLOCK_TAGS = _words("p div blockquote center poem pre")
_IMAGE_OPTIONS = _words(
    "thumb thumbnail frame framed frameless border left right center centre none upright baseline"
    " middle sub super top text-top bottom text-bottom loop muted"
    # the same options on the largest other-language wikis (de, fr, es, it, pt, nl)
    " mini miniatur hochkant links rechts zentriert ohne rahmenlos gerahmt rand vignette gauche"
    " droite centré néant cadre sans_cadre redresse miniatura izquierda derecha centro ninguno"
    " marco sinmarco sinistra destra nessuno esquerda direita nenhum miniatuur gecentreerd"
)
_OPTION_KEYED = re.compile(
    r"^(alt|link|page|class|lang|upright|thumbtime|start|end|thumb|thumbnail|frame|framed)\s*=",
    re.I,
)
_SIZE = re.compile(r"^\d*\s*(x\s*\d+)?\s*px$", re.I)
_IMAGE_PARAM = re.compile(
    r"^(?:image|img|photo|picture|cover|logo)(?:[_ ]?(name|file|skyline|map))?(\d*)$"
)
_FILE_NAME = re.compile(r"^[^\[\]{}<>|#]+\.(?:jpe?g|png|gif|svg|tiff?|webp|bmp|xcf)$", re.I)
_INTERWIKI = re.compile(r"^[a-z][a-z-]{1,11}$")
# References and comments are dropped anyway; removing them before parsing makes the parser ~3x
# faster on real articles (citation templates are most of their markup). <ref> cannot nest, and a
# match may not run across another "<ref", so an unclosed tag cannot swallow the text after it.
_PRESTRIP = re.compile(
    r"<ref\b[^>]*/>|<ref\b[^>]*>(?:(?!<ref\b).)*?</ref\s*>|<!--.*?(?:-->|\Z)|</?ref\b[^>]*>",
    re.S | re.I,
)
_HEADING = re.compile(r"^(={1,6})\s*(.+?)\s*\1$")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image an article shows, named by its ``File:`` title, with the article's caption."""

    title: str
    caption: str | None = None
    alt_text: str | None = None
    section: str | None = None  # the heading it is placed under (None: the lead)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "caption": self.caption,
            "alt_text": self.alt_text,
            "section": self.section,
        }


@dataclass(frozen=True, slots=True)
class Converted:
    text: str
    refs: list[ImageRef]
    disambiguation: bool = False


@dataclass(frozen=True, slots=True)
class Namespaces:
    """Lower-cased names (and aliases) of the File and Category namespaces."""

    file: frozenset[str] = frozenset({"file", "image"})
    category: frozenset[str] = frozenset({"category"})


def file_title(name: str) -> str:
    """``batman_logo.png`` -> ``File:Batman logo.png`` (the form MediaWiki reports)."""
    name = " ".join(name.replace("_", " ").split())
    return "File:" + name[:1].upper() + name[1:]


def convert_wikitext(
    wikitext: str,
    namespaces: Namespaces | None = None,
    disambig_templates: frozenset[str] = DEFAULT_DISAMBIG_TEMPLATES,
) -> Converted:
    """Plain text with ``== Heading ==`` lines, the image references, and a disambiguation flag."""
    mwp = require("mwparserfromhell", "wiki")
    r = _Renderer(mwp, namespaces or Namespaces(), disambig_templates)
    text = r.render(mwp.parse(_PRESTRIP.sub("", wikitext)))
    return Converted(tidy_text(text), r.refs, r.disambiguation)


class _Renderer:
    def __init__(self, mwp: Any, ns: Namespaces, disambig: frozenset[str]) -> None:
        self.n = mwp.nodes
        self.mwp = mwp
        self.ns = ns
        self.disambig = disambig
        self.refs: list[ImageRef] = []
        self._seen: set[str] = set()
        self.disambiguation = False
        self.section: str | None = None  # the heading rendered last: where a ref is placed

    def add_ref(self, name: str, caption: str | None, alt: str | None) -> None:
        title = file_title(name)
        if title.lower() not in self._seen and len(title) > 5:
            self._seen.add(title.lower())
            self.refs.append(ImageRef(title, caption or None, alt or None, self.section))

    def render(self, code: Any) -> str:
        if code is None:
            return ""
        n, parts = self.n, []
        for node in code.nodes:
            if isinstance(node, n.Text):
                parts.append(node.value)
            elif isinstance(node, n.Wikilink):
                parts.append(self._link(node))
            elif isinstance(node, n.Template):
                parts.append(self._template(node))
            elif isinstance(node, n.Tag):
                parts.append(self._tag(node))
            elif isinstance(node, n.Heading):
                title = " ".join(self.render(node.title).split())
                if title:
                    self.section = title
                    bar = "=" * node.level
                    parts.append(f"\n\n{bar} {title} {bar}\n")
            elif isinstance(node, n.HTMLEntity):
                parts.append(node.normalize().replace("\xa0", " "))
            elif isinstance(node, n.ExternalLink):
                parts.append(self.render(node.title) if node.brackets else "")
        return "".join(parts)

    def _split(self, code: Any) -> list[Any]:
        """Split wikicode on its top-level pipes (pipes inside nested links stay put)."""
        segments: list[list[Any]] = [[]]
        for node in code.nodes:
            if isinstance(node, self.n.Text) and "|" in node.value:
                first, *rest = node.value.split("|")
                segments[-1].append(self.n.Text(first))
                segments.extend([self.n.Text(p)] for p in rest)
            else:
                segments[-1].append(node)
        return [self.mwp.wikicode.Wikicode(seg) for seg in segments]

    def _image(self, name: str, params: list[Any]) -> None:
        caption = alt = None
        for seg in params:
            raw = str(seg).strip()
            low = raw.lower()
            if low.startswith("alt="):
                alt = " ".join(self.render(seg).split("=", 1)[1].split())
            elif low in _IMAGE_OPTIONS or _SIZE.match(low) or _OPTION_KEYED.match(low) or not raw:
                continue
            else:
                caption = " ".join(self.render(seg).split())
        self.add_ref(name, caption, alt)

    def _link(self, node: Any) -> str:
        title = str(node.title).strip()
        shown = title.startswith(":")
        prefix, sep, rest = title.lstrip(":").partition(":")
        space = prefix.strip().lower().replace("_", " ") if sep else ""
        if space in self.ns.file and not shown:
            self._image(rest, self._split(node.text) if node.text is not None else [])
            return ""
        if space in self.ns.category and not shown:
            return ""
        if node.text is None and sep and _INTERWIKI.match(prefix):
            return ""  # [[de:Batman]]: a language link, not text (article titles start uppercase)
        if node.text is not None:
            return self.render(node.text)
        return title.lstrip(":")

    def _template(self, node: Any) -> str:
        name = " ".join(str(node.name).replace("_", " ").split()).lower()
        name = name.removeprefix("template:")
        if name in self.disambig or name.endswith(" disambiguation"):
            self.disambiguation = True
        self._template_images(node)
        shown = INLINE_TEMPLATES.get(name)
        if not shown:
            return ""
        values = [self.render(node.get(str(i)).value).strip() for i in shown if node.has(str(i))]
        return " ".join(v for v in values if v)

    def _template_images(self, node: Any) -> None:
        params = {str(p.name).strip().lower(): p for p in node.params}
        for key, param in params.items():
            m = _IMAGE_PARAM.match(key)
            if not m:
                continue
            value = param.value
            if value.filter_wikilinks(recursive=False):
                self.render(value)  # collects [[File:...]] links; text not wanted
                continue
            name = str(value.strip_code()).strip()
            _, sep, rest = name.partition(":")
            if sep and _.strip().lower() in self.ns.file:
                name = rest.strip()
            if not _FILE_NAME.match(name):
                continue
            tail, n = m.group(1) or "image", m.group(2)
            caption = self._param_text(
                params,
                [
                    f"{key}_caption",
                    f"{tail}_caption",
                    f"caption{n}",
                    f"image_caption{n}",
                    f"image{n}_caption",
                    f"{key}_capt",
                    f"img_capt{n}",
                ],
            )
            alt = self._param_text(
                params, [f"{key}_alt", f"{tail}_alt", f"alt{n}", f"image_alt{n}", f"image{n}_alt"]
            )
            self.add_ref(name, caption, alt)

    def _param_text(self, params: dict[str, Any], keys: list[str]) -> str | None:
        for key in keys:
            if key in params:
                text = " ".join(self.render(params[key].value).split())
                if text:
                    return text
        return None

    def _tag(self, node: Any) -> str:
        tag = str(node.tag).strip().lower()
        if tag == "gallery":
            for line in str(node.contents or "").splitlines():
                segs = self._split(self.mwp.parse(line))
                name = str(segs[0]).strip()
                prefix, sep, rest = name.partition(":")
                if sep and prefix.strip().lower() in self.ns.file:
                    name = rest
                if name.strip():
                    self._image(name.strip(), segs[1:])
            return ""
        if tag in ("br", "hr"):
            return "\n"
        if tag in _DROP_TAGS or node.contents is None:
            return ""
        inner = self.render(node.contents)
        return f"\n{inner}\n" if tag in _BLOCK_TAGS else inner


def tidy_text(text: str) -> str:
    """Tidy what removed markup leaves behind; drop sections left empty."""
    text = re.sub(r"__[A-Z]+__", "", text)
    text = re.sub(r"\(\s*[,;:]?\s*\)", "", text)  # "Batman ({{IPA|...}})" -> "Batman"
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" +([,.;:])", r"\1", text)
    lines = [ln.strip() for ln in text.split("\n")]
    lines = [ln for ln in lines if not ln or any(ch.isalnum() for ch in ln)]
    kept: list[str] = []
    has_text, next_level = False, 99
    for ln in reversed(lines):  # a heading survives if text or a deeper kept heading follows it
        m = _HEADING.match(ln)
        if m:
            level = len(m.group(1))
            if has_text or next_level > level and next_level != 99:
                kept.append(ln)
                next_level = level
            has_text = False
        else:
            has_text = has_text or bool(ln)
            kept.append(ln)
    out = "\n".join(reversed(kept))
    out = re.sub(r"\n(={1,6} .+ ={1,6})\n", r"\n\n\1\n", out)
    return re.sub(r"\n{3,}", "\n\n", out).strip()
