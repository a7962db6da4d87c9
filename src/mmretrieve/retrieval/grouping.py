"""Rolling fused items up to their articles (docs/ARCHITECTURE.md, "A search")."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from ..types import Article, ArticleResult, Hit, SectionResult
from .fusion import descending

I = TypeVar("I", bound="Item")  # noqa: E741

# An article's score is its best items' scores, each counting half as much as the one before:
# one excellent item beats several mediocre ones, and agreement between items still helps.
ITEM_DECAY = (1.0, 0.5, 0.25)
SECTIONS_PER_ARTICLE = 3  # the best sections an article result shows in its section view
ITEMS_PER_SECTION = 2  # passages, and images, each section shows at most


def article_score(item_scores: Sequence[float]) -> float:
    best = sorted(item_scores, reverse=True)[: len(ITEM_DECAY)]
    return sum(w * s for w, s in zip(ITEM_DECAY, best, strict=False))


class Item(Protocol):
    """What grouping reads of a ranked item: a Hit, or a lighter stand-in for one."""

    kind: str
    article_id: str | None
    score: float
    contributions: Mapping[str, float]
    confidence: float | None
    section: str | None


def article_contributions(hits: Sequence[Item]) -> dict[str, float]:
    """What each route added to :func:`article_score` of ``hits``: the same decayed sum over the
    best items, route by route."""
    best = sorted(hits, key=lambda h: -h.score)[: len(ITEM_DECAY)]
    out: dict[str, float] = {}
    for weight, hit in zip(ITEM_DECAY, best, strict=False):
        for route, value in hit.contributions.items():
            out[route] = out.get(route, 0.0) + weight * value
    return out


def _confidence(hits: Sequence[Item]) -> float | None:
    values = [h.confidence for h in hits if h.confidence is not None]
    return max(values) if values else None


def group_by_article(
    hits: Sequence[I],
    articles: Mapping[str, Article] | Callable[[str], Article | None],
    k: int,
    passages_per_article: int = 3,
    images_per_article: int = 4,
    make: Callable[[I], Hit] | None = None,
) -> list[ArticleResult]:
    """Top ``k`` articles from fused ``hits`` (best first). Hits without an article stay only in
    the flat list. ``articles`` maps an id to its Article (a missing one is skipped). ``make``
    turns an item into its Hit (items are Hits when it is None): only the items an article shows
    are made."""
    lookup = articles.get if isinstance(articles, Mapping) else articles
    as_hit: Callable[[I], Hit] = make if make is not None else (lambda h: h)  # type: ignore[assignment,return-value]
    items: dict[str, list[I]] = {}
    for hit in hits:
        if hit.article_id:
            items.setdefault(hit.article_id, []).append(hit)
    scored = sorted(
        (
            (article_score([h.score for h in group]), article_id)
            for article_id, group in items.items()
        ),
        key=lambda t: (descending(t[0]), t[1]),
    )
    results: list[ArticleResult] = []
    for score, article_id in scored:
        article = lookup(article_id)
        if article is None:
            continue
        group = items[article_id]
        passages = [h for h in group if h.kind == "passage"][:passages_per_article]
        images = [h for h in group if h.kind == "image"][:images_per_article]
        results.append(
            ArticleResult(
                article=article,
                score=score,
                passages=[as_hit(h) for h in passages],
                images=[as_hit(h) for h in images],
                contributions=article_contributions(group),
                confidence=_confidence(group),
                sections=_sections(group, as_hit),
            )
        )
        if len(results) >= k:
            break
    return results


def _sections(group: Sequence[I], as_hit: Callable[[I], Hit]) -> list[SectionResult]:
    """An article's items by the section they sit in (passages by their heading, images by
    where the article places them), the best ``SECTIONS_PER_ARTICLE`` sections first."""
    by_section: dict[str | None, list[I]] = {}
    for item in group:  # best first already
        by_section.setdefault(item.section, []).append(item)
    scored = sorted(
        ((article_score([h.score for h in items]), title) for title, items in by_section.items()),
        key=lambda t: (descending(t[0]), t[1] or ""),
    )
    out = []
    for score, title in scored[:SECTIONS_PER_ARTICLE]:
        items = by_section[title]
        passages = [h for h in items if h.kind == "passage"][:ITEMS_PER_SECTION]
        images = [h for h in items if h.kind == "image"][:ITEMS_PER_SECTION]
        out.append(
            SectionResult(title, score, [as_hit(h) for h in passages], [as_hit(h) for h in images])
        )
    return out
