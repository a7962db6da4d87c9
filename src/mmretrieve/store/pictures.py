"""Format 4 keeps each distinct image file once (the pictures table) and one row per use (the
images table): finding uses whose picture is missing, and dropping pictures nobody uses."""

from __future__ import annotations

from .base import IMAGES, PICTURES, Store


def images_without_picture(store: Store, pictures: set[str] | None = None) -> set[str]:
    """Format 4: the image rows whose picture is not stored (a run killed between writing the
    uses and their picture); ``pictures``: the stored picture ids, when already read."""
    if pictures is None:
        pictures = {str(r["id"]) for r in store.scan(PICTURES, ["id"])}
    rows = store.scan(IMAGES, ["id", "sha256"])
    return {str(r["id"]) for r in rows if str(r.get("sha256") or "") not in pictures}


def drop_unused_pictures(store: Store) -> int:
    """Format 4: delete the pictures no image row uses any more (after deletes, prunes and file
    changes); how many. Pictures are read before uses, the reverse of the order writers write
    them in (``Indexer._write_images``), so a picture whose first uses are being written by
    another writer is never taken for unused."""
    pictures = [str(r["id"]) for r in store.scan(PICTURES, ["id"])]
    used = {str(r["sha256"]) for r in store.scan(IMAGES, ["sha256"]) if r.get("sha256")}
    unused = sorted(p for p in pictures if p not in used)
    if unused:
        store.delete(PICTURES, ids=unused)
    return len(unused)
