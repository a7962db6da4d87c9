"""The index manifest: how an index was built, and the guard against opening it differently."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from ..errors import IndexMismatchError

FORMAT_VERSION = 1
_MODEL_KEYS = ("name", "revision", "dim", "pooling", "query_instruction", "max_length", "random")


def model_entry(info: Mapping[str, Any]) -> dict[str, Any]:
    return {key: info.get(key) for key in _MODEL_KEYS}


def new_manifest(
    text_info: Mapping[str, Any],
    image_info: Mapping[str, Any] | None,
    chunking: Mapping[str, Any],
    runtime: str,
    store: str,
) -> dict[str, Any]:
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {
        "format_version": FORMAT_VERSION,
        "created_at": now,
        "updated_at": now,
        "models": {
            "text": model_entry(text_info),
            "image": model_entry(image_info) if image_info else None,
        },
        "chunking": dict(chunking),
        "runtime": runtime,
        "store": store,
    }


def check_format(manifest: Mapping[str, Any], where: str) -> None:
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexMismatchError(
            f"index at {where} has format version {version}; this mmretrieve reads version "
            f"{FORMAT_VERSION}. Rebuild the index with this version."
        )


def check_model(
    manifest: Mapping[str, Any], role: str, name: str | None, revision: str | None, where: str
) -> None:
    """Refuse a model other than the one the index was built with (``role``: text or image)."""
    built = (manifest.get("models") or {}).get(role)
    flag = "--text-model" if role == "text" else "--image-model"
    if built is None:
        if name is None:
            return
        raise IndexMismatchError(
            f"index at {where} was built without an {role} model, but {flag} {name} was given. "
            f"Build a new index to use one."
        )
    if name is None:
        raise IndexMismatchError(
            f"index at {where} was built with {role} model {built['name']!r}; it cannot be "
            f"opened without it."
        )
    if revision != built.get("revision"):
        raise IndexMismatchError(
            f"index at {where} was built with {role} model {built['name']!r} "
            f"(revision {built.get('revision')}), not {name!r} (revision {revision}). "
            f"Open it with the same model, or build a new index with {flag} {name}."
        )
