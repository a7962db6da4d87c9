"""Translate the backend-neutral filter mapping into SQL-like predicates (Lance, Milvus)."""

from __future__ import annotations

from collections.abc import Sequence

from .base import Filter, FilterValue, Match


def quote(value: str) -> str:
    """A string literal with embedded quotes doubled (SQL style)."""
    return "'" + str(value).replace("'", "''") + "'"


def like_prefix(prefix: str) -> str:
    """A LIKE pattern for "starts with ``prefix``" (``\\`` escapes the wildcards)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return quote(escaped + "%")


def _match(name: str, m: Match) -> str:
    parts = []
    if m.values:
        parts.append(f"{name} IN ({', '.join(quote(v) for v in m.values)})")
    parts += [f"{name} LIKE {like_prefix(p)} ESCAPE '\\'" for p in m.prefixes]
    found = " OR ".join(parts) if parts else "false"
    # SQL's NOT of a null is null (dropped): nulls are decided by m.null alone.
    present = f"({name} IS NOT NULL AND {'NOT ' if m.negate else ''}({found}))"
    return f"({name} IS NULL OR {present})" if m.null else present


def _term(name: str, value: FilterValue) -> str:
    if isinstance(value, Match):
        return _match(name, value)
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
    return (
        str(value) if isinstance(value, int) and not isinstance(value, bool) else quote(str(value))
    )


def to_sql(filter: Filter | None) -> str | None:
    """``{"article_id": ["a", "b"], "has_caption": True}``
    -> ``(article_id IN ('a', 'b')) AND (has_caption = true)``."""
    if not filter:
        return None
    return " AND ".join(f"({_term(name, value)})" for name, value in filter.items())


def ids_sql(ids: Sequence[str]) -> str:
    return _term("id", list(ids))
