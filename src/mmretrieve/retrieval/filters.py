"""Metadata filters: what a search is limited to (``license=CC0``, ``lang!=de``,
``url=https://en.wikipedia.org/*``), and how that is pushed down into every store query so that
a search still returns k results when k exist.

A filter names a field and says which values it may have (``=``, any of them) or must not have
(``!=``); a value ending in ``*`` is a prefix (``\\*`` is a literal star at the end). Several
values for one field and sign are alternatives; different fields must all hold. The fields are an
article's ``title``, ``url``, ``license``, ``source`` and every field its source gave
(``meta.json`` keys, JSONL fields: ``lang``, ``page_id``...); a passage is judged by its article.
An image is judged by its article too, except ``license``: an image's licence is its own file's.

Pushdown: the articles a filter keeps are found first (one scan of the articles table), and
every route's store query carries them as a condition on ``article_id`` (with the image's own
licence as a condition on the images table), so the store's top k are taken among the kept
items only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..store.base import ARTICLES, Filter, Match, Store
from .pictures import pictures_used_by

ARTICLE_COLUMNS = ("title", "url", "license", "source")
IMAGE_OWN = frozenset({"license"})  # image fields judged on the image, not its article
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")

FilterSpec = Mapping[str, Any] | Sequence[str]
"""``{"license": "CC0", "lang!=": ["de", "fr"], "url": "https://en.*"}`` or
``["license=CC0", "lang!=de", "url=https://en.*"]``."""


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    match: Match

    def holds(self, record: Mapping[str, str | None]) -> bool:
        return self.match.holds(record.get(self.key))


def _value(raw: Any, key: str) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float, str)):
        return str(raw)
    raise UsageError(f"filter {key}: values are strings, numbers or booleans, got {raw!r}")


def _entries(filters: FilterSpec) -> Iterable[tuple[str, bool, Any]]:
    """(key, negated, value or values) of each entry."""
    if isinstance(filters, Mapping):
        for raw_key, value in filters.items():
            key = str(raw_key).strip()
            negate = key.endswith("!=") or key.endswith("!")
            yield key.rstrip("=").rstrip("!").strip(), negate, value
        return
    if isinstance(filters, (str, bytes)):
        raise UsageError("filters: give KEY=VALUE strings in a list, or a mapping")
    for item in filters:
        if not isinstance(item, str) or "=" not in item:
            raise UsageError(f"filter {item!r}: write KEY=VALUE or KEY!=VALUE")
        key, value = item.split("=", 1)
        negate = key.endswith("!")
        yield key.rstrip("!").strip(), negate, value


def parse_filters(filters: FilterSpec | None) -> list[Condition]:
    """The conditions a filter spec asks for (module docstring); a malformed one is a
    UsageError naming it."""
    if not filters:
        return []
    merged: dict[tuple[str, bool], tuple[list[str], list[str]]] = {}
    for key, negate, raw in _entries(filters):
        if not _KEY.match(key):
            raise UsageError(
                f"filter key {key!r}: use a field name (letters, digits, _ . : -), e.g. license"
            )
        raws = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        if not raws:
            raise UsageError(f"filter {key}: give at least one value")
        values, prefixes = merged.setdefault((key, negate), ([], []))
        for one in raws:
            text = _value(one, key)
            if text.endswith("\\*"):
                values.append(text[:-2] + "*")
            elif text.endswith("*"):
                prefixes.append(text[:-1])
            else:
                values.append(text)
    return [
        Condition(
            key,
            Match(tuple(dict.fromkeys(v)), tuple(dict.fromkeys(p)), negate=negate, null=negate),
        )
        for (key, negate), (v, p) in merged.items()
    ]


@dataclass(frozen=True, slots=True)
class FilterPlan:
    """What each table's store queries add to their filter for one search."""

    passages: Filter
    images: Filter
    articles: Filter  # the image->passage:title route searches articles
    passage_articles: Match | None  # whose passages may appear (None: any; votes, title)
    pictures: Filter | None = None  # pictures with a use the filter keeps (index format 4)

    def for_table(self, table: str) -> Filter:
        return {"passages": self.passages, "images": self.images, ARTICLES: self.articles}[table]


def plan_filters(
    store: Store,
    conditions: Sequence[Condition],
    *,
    has_images: bool,
    has_meta: bool,
    has_pictures: bool = False,
) -> FilterPlan:
    """Find the articles the conditions keep and say how every route's store query keeps to
    them. A field that no article has is a UsageError listing those that exist. ``has_meta``:
    the articles table has the ``meta`` column (index format 3 on)."""
    if not has_meta:
        extra = sorted({c.key for c in conditions} - set(ARTICLE_COLUMNS))
        if extra:
            raise UsageError(
                f"this index was built before articles kept their source's other fields, so "
                f"it cannot filter on {', '.join(map(repr, extra))} (only on "
                f"{', '.join(ARTICLE_COLUMNS)}); rebuild it to filter on them"
            )
    image_own = [c for c in conditions if c.key in IMAGE_OWN]
    on_passages = _kept(store, conditions)
    on_images = on_passages if not image_own else _kept(store, [
        c for c in conditions if c.key not in IMAGE_OWN
    ])  # fmt: skip
    images: dict[str, Any] = {"article_id": on_images} if on_images is not None else {}
    for condition in image_own:
        images[condition.key] = condition.match
    passages = {"article_id": on_passages} if on_passages is not None else {}
    articles = {"id": on_passages} if on_passages is not None else {}
    pictures = pictures_used_by(store, images) if has_images and has_pictures and images else None
    return FilterPlan(passages, images if has_images else {}, articles, on_passages, pictures)


def _kept(store: Store, conditions: Sequence[Condition]) -> Match | None:
    """The articles that meet every condition, as a Match on an article id (None: every
    article, or no condition). The shorter of the kept and the dropped ids is listed."""
    if not conditions:
        return None
    keys = {c.key for c in conditions}
    columns = [k for k in ARTICLE_COLUMNS if k in keys]
    with_meta = bool(keys - set(ARTICLE_COLUMNS))
    fields = ["id", *columns, *(["meta"] if with_meta else [])]
    kept: list[str] = []
    dropped: list[str] = []
    seen_keys: set[str] = set(ARTICLE_COLUMNS)
    for row in store.scan(ARTICLES, fields):
        record = {k: row.get(k) for k in columns}
        if with_meta:
            meta = _meta(row.get("meta"))
            seen_keys.update(meta)
            record = {**record, **meta}  # a source's own field wins (e.g. meta.json "source")
        (kept if all(c.holds(record) for c in conditions) else dropped).append(str(row["id"]))
    unknown = sorted(keys - seen_keys)
    if unknown:
        raise UsageError(
            f"no indexed article has the field {', '.join(map(repr, unknown))}; fields here: "
            f"{', '.join(sorted(seen_keys))}"
        )
    # An item without an article (a lone image) meets the conditions that hold for no value.
    orphans = all(c.holds({}) for c in conditions)
    if not dropped and orphans:
        return None
    if len(kept) <= len(dropped):
        return Match(values=tuple(kept), null=orphans)
    return Match(values=tuple(dropped), negate=True, null=orphans)


def _meta(raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
