"""Turning results into JSON-ready dicts and human text; shared by the CLI and the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..types import Hit, SearchResult


def hit_dict(hit: Hit) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": hit.kind,
        "id": hit.id,
        "article_id": hit.article_id,
        "score": hit.score,
        "routes": dict(hit.route_scores),
    }
    if hit.kind == "passage":
        out.update(text=hit.text, section=hit.section)
    else:
        out.update(uri=hit.uri, caption=hit.caption)
    return out


def result_dict(result: SearchResult, query: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "query": dict(query),
        "articles": [
            {
                "article": {
                    "id": a.article.id,
                    "title": a.article.title,
                    "url": a.article.url,
                    "license": a.article.license,
                },
                "score": a.score,
                "passages": [hit_dict(h) for h in a.passages],
                "images": [hit_dict(h) for h in a.images],
            }
            for a in result.articles
        ],
        "hits": [hit_dict(h) for h in result.hits],
        "routes": dict(result.routes),
        "timings_ms": {k.removesuffix("_ms"): round(v, 3) for k, v in result.timings.items()},
    }


def _snippet(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def result_text(result: SearchResult, width: int = 100) -> str:
    """Each article's title, score, best passage snippets and image files."""
    lines: list[str] = []
    if not result.articles and not result.hits:
        return "No results."
    for n, group in enumerate(result.articles, start=1):
        url = f"  {group.article.url}" if group.article.url else ""
        lines.append(f"{n}. {group.article.title}  (score {group.score:.4f}){url}")
        for hit in group.passages:
            section = f"[{hit.section}] " if hit.section else ""
            lines.append(f"   - {section}{_snippet(hit.text, width - 5 - len(section))}")
        for hit in group.images:
            caption = f"  {_snippet(hit.caption, 50)}" if hit.caption else ""
            lines.append(f"   * image {hit.uri}  (score {hit.score:.4f}){caption}")
    grouped = {h.id for g in result.articles for h in (*g.passages, *g.images)}
    loose = [
        h for h in result.hits if h.kind == "image" and not h.article_id and h.id not in grouped
    ]
    if loose:
        lines.append("Images not linked to an article:")
        lines.extend(f"   * image {h.uri}  (score {h.score:.4f})" for h in loose)
    total = result.timings.get("total_ms")
    if total is not None:
        lines.append(f"({total:.0f} ms)")
    return "\n".join(lines)
