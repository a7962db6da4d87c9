"""The Python API every interface calls: ``Index.open``, ``add``, ``search``, ``delete``,
``stats`` and item lookups."""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings, settings_from_env
from .encoders.base import ImageTextEncoder, TextEncoder
from .errors import IndexNotFoundError, UsageError
from .indexing import (
    Indexer,
    IndexingOptions,
    IndexReport,
    ProgressFn,
    sources_items,
)
from .indexing_options import ProgressBar
from .opening import settings_for_existing, settings_for_new
from .retrieval.records import IMAGE_FIELDS, image_of
from .store import ARTICLES, IMAGES, PASSAGES, PICTURES, Store, open_store, table_schemas
from .store.manifest import format_of, new_manifest, runtime_record
from .store.pictures import drop_unused_pictures
from .types import Article, Image, ImageInput, Passage, Query, SearchResult

if TYPE_CHECKING:
    from .retrieval.searcher import Searcher


class Index:
    """A searchable index of articles, passages and images in one store.

    >>> index = Index.open("./idx", text_model="BAAI/bge-small-en-v1.5")   # doctest: +SKIP
    >>> index.add("./wiki")                                                # doctest: +SKIP
    >>> index.search(text="Who is Bruce Wayne?", k=5).articles[0].article.title  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        manifest: dict[str, Any],
        settings: Settings,
        text_encoder: TextEncoder | None = None,
        image_encoder: ImageTextEncoder | None = None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.settings = settings
        self._text_encoder: TextEncoder | None = text_encoder
        self._image_encoder: ImageTextEncoder | None = image_encoder
        self._searcher: Searcher | None = None
        # What runtime="auto" optimises the encoders for when they are first loaded.
        self._workload = "query"
        # Searches from many threads (a server) load each model and the searcher once.
        self._loading = threading.RLock()

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        location: str | Path,
        *,
        text_model: str | None = None,
        image_model: str | None = None,
        create: bool = True,
        settings: Settings | None = None,
        text_encoder: TextEncoder | None = None,
        image_encoder: ImageTextEncoder | None = None,
    ) -> Index:
        """Open the index at ``location`` (a path or store URI), creating it when absent.

        ``text_model`` / ``image_model``: a Hugging Face name or local folder; ``None`` means the
        one the index was built with (or the default for a new index); ``image_model="none"``
        builds a text-only index. Other models than the index's raise IndexMismatchError.
        ``text_encoder`` / ``image_encoder``: ready encoder objects (any implementation of the
        protocols in ``mmretrieve.encoders.base``) used instead of loading models by name.
        """
        settings = settings or settings_from_env()
        encoders = (text_encoder, image_encoder)
        store = open_store(location)
        where = str(location)
        manifest = store.read_manifest()
        if manifest is None:
            if not create:
                store.close()
                raise IndexNotFoundError(f"no index at {where}; build one with `mmretrieve index`")
            try:
                settings = settings_for_new(settings, text_model, image_model, encoders)
            except UsageError:
                store.close()
                raise
            index = cls(store, {}, settings, text_encoder, image_encoder)
            index._workload = "index"  # a new index is about to be filled
            index._create_manifest()
            return index
        settings = settings_for_existing(
            manifest, where, settings, text_model, image_model, encoders
        )
        models = manifest["models"]
        image_entry = models.get("image")
        store.ensure_tables(
            table_schemas(
                models["text"]["dim"],
                image_entry["dim"] if image_entry else None,
                clip_text_view=bool(settings.clip_text_view),
                version=format_of(manifest),
            )
        )
        return cls(store, manifest, settings, text_encoder, image_encoder)

    def _create_manifest(self) -> None:
        text = self.text_encoder
        image = self.image_encoder
        chunking = {
            "max_tokens": self.settings.chunk_tokens,
            "overlap": self.settings.chunk_overlap,
            "tokenizer": text.info.get("name"),
        }
        runtime: Any = runtime_record(text, image)
        view = bool(self.settings.clip_text_view and image is not None)
        self.manifest = new_manifest(
            text.info,
            image.info if image is not None else None,
            chunking,
            runtime,
            self.store.uri,
            clip_text_view=view,
        )
        self.store.ensure_tables(
            table_schemas(
                text.dim,
                image.dim if image is not None else None,
                clip_text_view=view,
                version=format_of(self.manifest),
            )
        )
        self.store.write_manifest(self.manifest)

    # -- models (loaded on first use) -------------------------------------------------------
    def _once(self, attr: str, make: Callable[[], Any]) -> Any:
        """``self.<attr>``, made by ``make`` the first time; searches from many threads (a
        server) make it once."""
        value = getattr(self, attr)
        if value is None:
            with self._loading:
                value = getattr(self, attr)
                if value is None:
                    value = make()
                    setattr(self, attr, value)
        return value

    @property
    def text_encoder(self) -> TextEncoder:
        def load() -> TextEncoder:
            from .encoders import load_text_encoder

            return load_text_encoder(
                self.settings.text_model,
                runtime=self.settings.runtime,
                precision=self.settings.precision,
                workload=self._workload,
                device=self.settings.device,
                query_instruction=self.settings.query_instruction,
            )

        return self._once("_text_encoder", load)

    @property
    def image_encoder(self) -> ImageTextEncoder | None:
        model = self.settings.image_model
        if not model:
            return self._image_encoder

        def load() -> ImageTextEncoder:
            from .encoders import load_image_encoder

            return load_image_encoder(
                model,
                runtime=self.settings.runtime,
                precision=self.settings.precision,
                workload=self._workload,
                device=self.settings.device,
            )

        return self._once("_image_encoder", load)

    def loaded_models(self) -> list[dict[str, Any]]:
        return [e.info for e in (self._text_encoder, self._image_encoder) if e is not None]

    def warnings(self) -> list[str]:
        """What a user of this index's results must know: a loaded model with random weights
        (made for testing) gives results that mean nothing."""
        return [
            f"model {info.get('name')} has RANDOM weights (made for testing); "
            "its results mean nothing"
            for info in self.loaded_models()
            if info.get("random")
        ]

    # -- writing ----------------------------------------------------------------------------
    def add(
        self,
        sources: str | Path | Sequence[str | Path],
        *,
        prune: bool = False,
        progress: bool | ProgressFn = False,
    ) -> IndexReport:
        """Index one or more sources (folders or JSONL files). Unchanged items are skipped,
        changed ones replaced; with ``prune`` items no longer in the sources are removed."""
        self._writable("add to it")
        paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
        self._workload = "index"  # encoders not loaded yet are chosen for batch work
        options = self.indexing_options(prune)
        with ProgressBar(progress) as report_progress:
            indexer = Indexer(
                self.store, self.text_encoder, self.image_encoder, options, report_progress
            )
            report = indexer.run(sources_items(paths))
        if self._searcher is not None:  # the calibration samples what is indexed now
            self._searcher.forget()
        self.manifest["updated_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds"
        )
        self.manifest["runtime"] = runtime_record(self.text_encoder, self.image_encoder)
        self.store.write_manifest(self.manifest)
        return report

    def indexing_options(self, prune: bool = False) -> IndexingOptions:
        """How this index's items are written (its settings, and what its format holds)."""
        return IndexingOptions.from_settings(
            self.settings, prune, format_version=self.format_version
        )

    @property
    def format_version(self) -> int:
        """The index's format (3: images carry perceptual hashes, articles their meta fields)."""
        return format_of(self.manifest)

    def delete(self, article_ids: Sequence[str] = (), image_ids: Sequence[str] = ()) -> None:
        """Remove articles (with their passages and the images they use) and images by id. A
        picture other articles use too stays theirs: each use is its own image row."""
        self._writable("delete from it")
        has_images = bool(self.manifest["models"].get("image"))
        if article_ids:
            self.store.delete(PASSAGES, filter={"article_id": list(article_ids)})
            if has_images:
                self.store.delete(IMAGES, filter={"article_id": list(article_ids)})
            self.store.delete(ARTICLES, ids=list(article_ids))
        if image_ids and has_images:
            self.store.delete(IMAGES, ids=list(image_ids))
        if has_images and self.format_version >= 4 and (article_ids or image_ids):
            drop_unused_pictures(self.store)  # a picture goes with its last use
        if self._searcher is not None:  # the calibration samples what is indexed now
            self._searcher.forget()

    def _writable(self, what: str) -> None:
        # Before any work (models, sources): a read-only index (store/lance.py) refuses at once.
        check = getattr(self.store, "writable", None)
        if callable(check):
            check(what)

    # -- reading ----------------------------------------------------------------------------
    @property
    def searcher(self) -> Searcher:
        def make() -> Searcher:
            from .retrieval.searcher import Searcher

            return Searcher(
                self.store,
                self.text_encoder,
                self.image_encoder,
                max_image_pixels=self.settings.max_image_pixels,
                max_image_bytes=self.settings.max_image_bytes,
                clip_text_view=bool(self.settings.clip_text_view),
                format_version=self.format_version,
            )

        return self._once("_searcher", make)

    def search(
        self,
        text: str | None = None,
        image: ImageInput | None = None,
        *,
        k: int = 10,
        weights: Mapping[str, float] | None = None,
        method: str | None = None,
        article_ids: Sequence[str] | None = None,
        min_score: float | None = None,
        filters: Mapping[str, Any] | Sequence[str] | None = None,
    ) -> SearchResult:
        """Search by text, image (path, bytes or PIL image) or both; top ``k`` articles.

        ``filters`` limits the search to items whose fields have given values, pushed down
        into every store query (k results when k exist): ``{"license": ["CC0", "CC BY 4.0"],
        "lang!=": "de", "url": "https://en.wikipedia.org/*"}`` or the same as ``KEY=VALUE``
        strings. Fields: an article's title, url, license, source and every field its source
        gave; an image's license is its own. A field no article has is a UsageError.

        ``min_score`` (0-1) keeps only items and articles whose confidence reaches it: the
        calibrated chance that a route matched them better than chance would (0.5: about as
        strong as the best chance match of 1 unrelated query in 20; docs/QUALITY.md). A search
        with nothing that relevant returns no articles."""
        from .retrieval.searcher import DEFAULT_METHOD, SearchOptions

        query = Query(text=text, image=image, weights=weights)
        options = SearchOptions(
            k=k,
            method=method or DEFAULT_METHOD,
            article_ids=list(article_ids) if article_ids is not None else None,
            min_score=min_score,
            filters=filters,
        )
        return self.searcher.search(query, options)

    def decode_image(
        self,
        source: ImageInput,
        *,
        max_pixels: int | None = None,
        max_bytes: int | None = None,
        max_side: int | None = None,
    ) -> Any:
        """Decode an image as this index's search does: a path, the file's bytes or a PIL
        image, checked against the index's pixel and byte limits (``max_pixels`` and
        ``max_bytes`` replace them, e.g. a server's upload limits) and decoded at the size the
        image model takes. With ``max_side`` it is decoded for display instead (longest side at
        most ``max_side``; no model is loaded). Raises :class:`BadInputError` with the reason."""
        from .documents.images import load_image
        from .encoders.base import decode_image

        pixels = self.settings.max_image_pixels if max_pixels is None else max_pixels
        limit = self.settings.max_image_bytes if max_bytes is None else max_bytes
        if max_side is not None:
            if isinstance(source, (str, Path, bytes)):
                return load_image(source, max_pixels=pixels, max_bytes=limit, max_side=max_side)
            shown = source.convert("RGB")  # a PIL image: a copy, resized below
            shown.thumbnail((max_side, max_side))
            return shown
        return decode_image(source, self.image_encoder, max_pixels=pixels, max_bytes=limit)

    def warm(self) -> dict[str, Any]:
        """Get ready to answer fast: load the query models and run a text and an image query
        through them, and hold the tables in memory where the store can (store/hot.py). A
        server calls this at start, so its first query is as fast as the next ones."""
        import time

        start = time.perf_counter()
        # Tables first: the warm-up searches then run the paths real ones take (held tables,
        # BM25 in memory), so whatever those build on first use is built before a query comes.
        held = self.hold_tables()
        self.searcher.warm()
        return {"seconds": round(time.perf_counter() - start, 2), "tables_held": held}

    def hold_tables(self) -> dict[str, int]:
        """Hold the tables in memory now where the store can (store/hot.py); rows held per
        table ({} for a store that holds nothing)."""
        warm_store = getattr(self.store, "warm", None)
        return warm_store() if callable(warm_store) else {}

    def articles(self, ids: Sequence[str]) -> dict[str, Article]:
        """The articles with these ids (text not loaded); unknown ids are left out."""
        from .retrieval.records import load_articles

        return load_articles(self.store, ids)

    def image(self, image_id: str) -> Image | None:
        """One indexed image's metadata (``uri`` is the indexed file), or None."""
        if not self.manifest["models"].get("image"):
            return None
        rows = self.store.get(IMAGES, [image_id], IMAGE_FIELDS)
        return image_of(rows[0]) if rows and rows[0]["id"] == image_id else None

    def article(self, article_id: str) -> tuple[Article, list[Passage], list[Image]] | None:
        """An article with all its passages (in order) and images, or None."""
        found = self.articles([article_id]).get(article_id)
        if found is None:
            return None
        where = {"article_id": article_id}
        fields = ("id", "article_id", "text", "position", "section")
        passages = sorted(
            (Passage(**r) for r in self.store.scan(PASSAGES, fields, where)),
            key=lambda p: p.position,
        )
        images: list[Image] = []
        if self.manifest["models"].get("image"):
            images = [image_of(r) for r in self.store.scan(IMAGES, IMAGE_FIELDS, where)]
        return found, passages, images

    def stats(self) -> dict[str, Any]:
        counts = {
            "articles": self.store.count(ARTICLES),
            "passages": self.store.count(PASSAGES),
            "images": self.store.count(IMAGES) if self.manifest["models"].get("image") else 0,
        }
        if self.manifest["models"].get("image") and self.format_version >= 4:
            counts["pictures"] = self.store.count(PICTURES)  # distinct files: stored once
        return {
            "counts": counts,
            "models": self.manifest["models"],
            "chunking": self.manifest["chunking"],
            "runtime": self.manifest.get("runtime"),
            "store": self.store.uri,
            "format_version": self.manifest["format_version"],
            "created_at": self.manifest.get("created_at"),
            "updated_at": self.manifest.get("updated_at"),
        }

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__: list[str] = ["Index"]
