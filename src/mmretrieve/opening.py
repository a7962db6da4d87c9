"""What opening an index settles before any model loads: a new index's settings from the
caller's, or an existing index's from its manifest, after checking that the models and options
asked for are the ones it was built with."""

from __future__ import annotations

from typing import Any

from .config import Settings
from .errors import UsageError
from .store.manifest import check_format, check_model, check_view

NONE = "none"


def settings_for_new(
    settings: Settings,
    text_model: str | None,
    image_model: str | None,
    encoders: tuple[Any, Any],
) -> Settings:
    """The settings a new index is built with (its models' names come from ready encoders
    when given). Raises UsageError for options that cannot go together."""
    text_encoder, image_encoder = encoders
    text_name = text_model or settings.text_model
    image_name = settings.image_model if image_model is None else image_model
    if image_name in (None, "", NONE):
        image_name = None
    if text_encoder is not None:
        text_name = str(text_encoder.info["name"])
    if image_encoder is not None:
        image_name = str(image_encoder.info["name"])
    if settings.clip_text_view and image_name is None:
        raise UsageError(
            "the CLIP text view of passages needs an image model; leave out "
            "--clip-text-view or give --image-model"
        )
    return settings.with_(
        text_model=text_name,
        image_model=image_name,
        clip_text_view=bool(settings.clip_text_view and image_name),
    )


def settings_for_existing(
    manifest: dict[str, Any],
    where: str,
    settings: Settings,
    text_model: str | None,
    image_model: str | None,
    encoders: tuple[Any, Any],
) -> Settings:
    """An existing index's settings: its models and chunking, after checking that the models,
    encoders and options asked for match it (IndexMismatchError otherwise)."""
    from .encoders.resolve import resolve_model

    text_encoder, image_encoder = encoders
    check_format(manifest, where)
    view = check_view(manifest, settings.clip_text_view, where)
    models = manifest["models"]
    for role, given in (("text", text_model), ("image", image_model)):
        if given is None:
            continue
        if given == NONE:
            check_model(manifest, role, None, None, where)
            continue
        resolved = resolve_model(given, role)
        check_model(manifest, role, given, resolved.revision, where)
    for role, encoder in (("text", text_encoder), ("image", image_encoder)):
        if encoder is not None:
            info = encoder.info
            revision = info.get("revision")
            rev = str(revision) if revision is not None else None
            check_model(manifest, role, str(info["name"]), rev, where)
    image_entry = models.get("image")
    settings = settings.with_(
        text_model=text_model or models["text"]["name"],
        image_model=(image_model if image_model not in (None, NONE) else None)
        or (image_entry["name"] if image_entry else None),
        chunk_tokens=manifest["chunking"]["max_tokens"],
        chunk_overlap=manifest["chunking"]["overlap"],
        clip_text_view=view,
    )
    if image_entry is None:
        settings = settings.with_(image_model=None)
    return settings
