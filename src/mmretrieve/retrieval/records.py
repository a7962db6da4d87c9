"""Store rows into what a search returns: articles, hits, and the passages a search may use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..store.base import ARTICLES, Row, Store
from ..types import Article, Hit, Image
from .fusion import Fused
from .routes import Key, Ranked


def load_articles(store: Store, ids: Iterable[str]) -> dict[str, Article]:
    """Articles by id (without their text); unknown ids are left out."""
    return {id_: article_of(row) for id_, row in article_rows(store, ids).items()}


def article_rows(store: Store, ids: Iterable[str | None]) -> dict[str, Row]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    fields = ("id", "title", "url", "license", "source", "content_hash")
    return {r["id"]: r for r in store.get(ARTICLES, wanted, fields)}


def article_of(row: Mapping[str, Any]) -> Article:
    return Article(
        id=row["id"],
        title=row["title"],
        url=row.get("url"),
        license=row.get("license"),
        source=row.get("source"),
    )


def drop_half_written(
    route_lists: Mapping[str, Ranked], rows: Mapping[Key, Row], articles: Mapping[str, Row]
) -> dict[str, Ranked]:
    """``route_lists`` without the passages of articles the indexer is still writing.

    The indexer writes an article's passages first and its article row last (indexing.py), and
    every passage carries its article's content hash. A passage whose article row is missing, or
    holds another hash (an edit in progress), is part of a half-written article: it is dropped
    before fusion, so a search sees each article either as last completely written or not at
    all. Images stand on their own (an image may belong to no indexed article) and are kept.
    """

    def complete(key: Key) -> bool:
        if key[0] != "passage":
            return True
        row = rows[key]
        article = articles.get(row.get("article_id") or "")
        return article is not None and row.get("content_hash") == article.get("content_hash")

    return {name: [it for it in items if complete(it[0])] for name, items in route_lists.items()}


def make_hit(
    fused: Fused,
    row: Mapping[str, Any],
    routes: Mapping[str, float],
    article_ids: tuple[str, ...] = (),
) -> Hit:
    key: Key = fused.key  # type: ignore[assignment]
    kind, id_ = key
    common: dict[str, Any] = {
        "contributions": dict(fused.contributions),
        "confidence": fused.confidence,
    }
    if kind == "passage":
        return Hit(
            "passage",
            id_,
            row.get("article_id"),
            fused.score,
            dict(routes),
            text=row.get("text"),
            section=row.get("section"),
            **common,
        )
    return Hit(
        "image",
        id_,
        row.get("article_id") or None,
        fused.score,
        dict(routes),
        uri=row.get("uri"),
        caption=row.get("caption"),
        section=row.get("section"),
        article_ids=article_ids,
        **common,
    )


IMAGE_FIELDS = (
    "id",
    "article_id",
    "uri",
    "caption",
    "alt_text",
    "width",
    "height",
    "sha256",
    "license",
)


def image_of(row: Mapping[str, Any]) -> Image:
    return Image(**{name: row.get(name) for name in IMAGE_FIELDS})  # type: ignore[arg-type]
