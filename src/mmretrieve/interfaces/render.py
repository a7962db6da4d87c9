"""Turning results into JSON-ready dicts and human text; shared by the CLI and the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..types import Hit, SearchResult


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {name: round(float(v), 6) for name, v in values.items()}


def hit_dict(hit: Hit) -> dict[str, Any]:
    """``routes``: each route's raw score; ``contributions``: what it added to ``score``."""
    out: dict[str, Any] = {
        "kind": hit.kind,
        "id": hit.id,
        "article_id": hit.article_id,
        "score": hit.score,
        "confidence": hit.confidence,
        "routes": dict(hit.route_scores),
        "contributions": _rounded(hit.contributions),
    }
    if hit.kind == "passage":
        out.update(text=hit.text, section=hit.section)
    else:
        out.update(
            uri=hit.uri, caption=hit.caption, section=hit.section, article_ids=list(hit.article_ids)
        )
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
                "confidence": a.confidence,
                "contributions": _rounded(a.contributions),
                "passages": [hit_dict(h) for h in a.passages],
                "images": [hit_dict(h) for h in a.images],
                "sections": [
                    {
                        "title": s.title,
                        "score": s.score,
                        "passages": [hit_dict(h) for h in s.passages],
                        "images": [hit_dict(h) for h in s.images],
                    }
                    for s in a.sections
                ],
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


def why_text(contributions: Mapping[str, float], limit: int = 4) -> str:
    """``text->passage:dense +0.62, text->passage:bm25 +0.31``: the routes that added most,
    largest first."""
    parts = sorted(((v, r) for r, v in contributions.items() if v > 0.0005), reverse=True)
    if not parts:
        return "no route added to it"
    shown = [f"{r} +{v:.2f}" for v, r in parts[:limit]]
    rest = len(parts) - limit
    return ", ".join(shown) + (f", {rest} more" if rest > 0 else "")


def _measure(score: float, confidence: float | None) -> str:
    sure = f", confidence {confidence:.2f}" if confidence is not None else ""
    return f"score {score:.4f}{sure}"


def _items(
    lines: list[str],
    passages: list[Hit],
    images: list[Hit],
    width: int,
    why: bool,
    indent: str,
    show_section: bool,
) -> None:
    for hit in passages:
        section = f"[{hit.section}] " if hit.section and show_section else ""
        room = width - 5 - len(indent) - len(section)
        lines.append(f"{indent}   - {section}{_snippet(hit.text, room)}")
        if why:
            lines.append(
                f"{indent}     ({_measure(hit.score, hit.confidence)}: "
                f"{why_text(hit.contributions)})"
            )
    for hit in images:
        caption = f"  {_snippet(hit.caption, 50)}" if hit.caption else ""
        shared = f"  in {len(hit.article_ids)} articles" if len(hit.article_ids) > 1 else ""
        measure = _measure(hit.score, hit.confidence)
        lines.append(f"{indent}   * image {hit.uri}  ({measure}){caption}{shared}")
        if why:
            lines.append(f"{indent}     (why: {why_text(hit.contributions)})")


def result_text(
    result: SearchResult, width: int = 100, why: bool = False, sections: bool = False
) -> str:
    """Each article's title, score, confidence, best passage snippets and image files; with
    ``why``, what each route added (article and items); with ``sections``, the article's best
    sections, each with its passages and images."""
    lines: list[str] = []
    if not result.articles and not result.hits:
        return "No results."
    for n, group in enumerate(result.articles, start=1):
        url = f"  {group.article.url}" if group.article.url else ""
        lines.append(
            f"{n}. {group.article.title}  ({_measure(group.score, group.confidence)}){url}"
        )
        if why:
            lines.append(f"   why: {why_text(group.contributions)}")
        if sections:
            for part in group.sections:
                lines.append(f"   § {part.title or '(lead)'}  (score {part.score:.4f})")
                _items(lines, part.passages, part.images, width, why, "  ", False)
        else:
            _items(lines, group.passages, group.images, width, why, "", True)
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
