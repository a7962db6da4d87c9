"""The index manifest: how an index was built, and the guard against opening it differently."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from ..errors import IndexMismatchError

# 2: passages carry CLIP text vectors only when ``views.clip_text`` says so. Version 1 indexes
# (every passage has them) are read as they are; an older mmretrieve refuses version 2.
# 3: images carry a perceptual hash (``phash``), which finds resized and re-encoded copies of a
# picture, and their section; articles their other source fields (``meta``), which searches
# filter on. Versions 1 and 2 are read and written without them.
# 4: a picture is stored once (``pictures``: one row per distinct file, with its CLIP vector);
# an ``images`` row is one use of it. The CLIP routes search pictures, so copies of a file no
# longer fill a route's candidates. Every version is read and written in its own layout.
FORMAT_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
_MODEL_KEYS = ("name", "revision", "dim", "pooling", "query_instruction", "max_length", "random")


def model_entry(info: Mapping[str, Any]) -> dict[str, Any]:
    return {key: info.get(key) for key in _MODEL_KEYS}


def new_manifest(
    text_info: Mapping[str, Any],
    image_info: Mapping[str, Any] | None,
    chunking: Mapping[str, Any],
    runtime: str,
    store: str,
    clip_text_view: bool = False,
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
        "views": {"clip_text": bool(clip_text_view and image_info)},
        "runtime": runtime,
        "store": store,
    }


def clip_text_view(manifest: Mapping[str, Any]) -> bool:
    """Whether passages carry a CLIP text vector. Indexes made before the choice existed have it
    whenever they have an image model."""
    views = manifest.get("views")
    if isinstance(views, Mapping) and "clip_text" in views:
        return bool(views["clip_text"])
    return bool((manifest.get("models") or {}).get("image"))


def format_of(manifest: Mapping[str, Any]) -> int:
    """The index's format version (checked by :func:`check_format` when opened)."""
    version = manifest.get("format_version")
    return version if isinstance(version, int) else FORMAT_VERSION


def check_view(manifest: Mapping[str, Any], wanted: bool | None, where: str) -> bool:
    """The index's CLIP text view of passages; asking for the other one is a mismatch."""
    built = clip_text_view(manifest)
    if wanted is not None and bool(wanted) != built:
        if wanted and not (manifest.get("models") or {}).get("image"):
            raise IndexMismatchError(
                f"index at {where} has no image model, so it cannot have a CLIP text view of "
                f"its passages."
            )
        state, flag = ("with", "--no-clip-text-view") if built else ("without", "--clip-text-view")
        raise IndexMismatchError(
            f"index at {where} was built {state} the CLIP text view of passages. Leave the "
            f"option out to use the index as built, or build a new index with {flag}."
        )
    return built


def check_format(manifest: Mapping[str, Any], where: str) -> None:
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        raise IndexMismatchError(
            f"index at {where} has format version {version}; this mmretrieve reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Rebuild the index with this version."
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


def runtime_record(*encoders: Any) -> dict[str, Any]:
    """What the manifest records of the runtime each encoder ran in (the last one that wrote)."""
    record: dict[str, Any] = {}
    for role, encoder in zip(("text", "image"), encoders, strict=False):
        if encoder is not None:
            info = encoder.info
            record[role] = {k: info.get(k) for k in ("runtime", "dtype", "device")}
    return record
