"""The indexer's image worker: hash a file, and unless unchanged decode it for the image model
(runs in a thread pool beside the models; Pillow and the runtimes release the GIL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .documents.hashing import file_sha256
from .documents.images import perceptual_hash, probe_image
from .encoders.base import decode_image
from .errors import BadInputError
from .indexing_options import IndexingOptions, image_hash
from .types import Image


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a decode worker hands back for one image: a skip reason, "unchanged", or pixels."""

    skip: str | None = None
    unchanged: bool = False
    sha: str = ""
    digest: str = ""
    width: int = 0
    height: int = 0
    picture: Any = None
    phash: int | None = None


def prepare_image(
    image: Image, previous: str | None, options: IndexingOptions, encoder: object
) -> Prepared:
    """Hash, and unless unchanged, decode one image (runs in a worker thread)."""
    try:
        sha = file_sha256(image.uri)
    except OSError as exc:
        return Prepared(skip=f"cannot read image: {exc.strerror or exc}")
    digest = image_hash(sha, image)
    if previous == digest:
        return Prepared(unchanged=True)
    try:
        width, height, _ = probe_image(image.uri)
        picture = decode_image(
            image.uri,
            encoder,
            max_pixels=options.max_image_pixels,
            max_bytes=options.max_image_bytes,
        )
    except BadInputError as exc:
        return Prepared(skip=str(exc))
    phash = perceptual_hash(picture) if options.format_version >= 3 else None
    return Prepared(
        sha=sha, digest=digest, width=width, height=height, picture=picture, phash=phash
    )
