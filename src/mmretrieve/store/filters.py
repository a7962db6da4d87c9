"""Translate the backend-neutral filter mapping into SQL-like predicates (Lance, Milvus)."""

from __future__ import annotations

from collections.abc import Sequence

from .base import Filter, FilterValue


def quote(value: str) -> str:
    """A string literal with embedded quotes doubled (SQL style)."""
    return "'" + str(value).replace("'", "''") + "'"


def _term(name: str, value: FilterValue) -> str:
    if isinstance(value, bool):
        return f"{name} = {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{name} = {value}"
    if isinstance(value, str):
        return f"{name} = {quote(value)}"
    values = list(value)
    if not values:
        return "false"
    return f"{name} IN ({', '.join(_literal(v) for v in values)})"


def _literal(value: object) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else quote(str(value))


def to_sql(filter: Filter | None) -> str | None:
    """``{"article_id": ["a", "b"], "has_caption": True}``
    -> ``(article_id IN ('a', 'b')) AND (has_caption = true)``."""
    if not filter:
        return None
    return " AND ".join(f"({_term(name, value)})" for name, value in filter.items())


def ids_sql(ids: Sequence[str]) -> str:
    return _term("id", list(ids))
