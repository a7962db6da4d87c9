"""LlamaIndex integration (docs/LLAMAINDEX.md): a retriever over an mmretrieve index, and
embedding adapters.

Import this module only when you use it; it needs ``pip install 'mmretrieve[llamaindex]'``.

* :class:`MMRetriever` is a LlamaIndex ``BaseRetriever``: a plain string or a ``QueryBundle``
  (with ``image_path`` for a picture) in, ``NodeWithScore`` out: a ``TextNode`` per passage and an
  ``ImageNode`` per image, best first, with the article id, title, url and route scores in
  ``metadata``. It calls ``Index.search`` and holds no retrieval logic of its own.
* :class:`MMTextEmbedding` (a ``BaseEmbedding``) and :class:`MMClipEmbedding` (a
  ``MultiModalEmbedding``) wrap our encoders, so LlamaIndex's own indexes, such as
  ``MultiModalVectorStoreIndex``, can embed with exactly the models an mmretrieve index uses.

Example::

    from mmretrieve.integrations.llama_index import MMRetriever
    retriever = MMRetriever.from_index("./idx", k=5)
    nodes = retriever.retrieve("Who is Bruce Wayne?")
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import require

require("llama_index.core", "llamaindex", "llama-index-core")

from llama_index.core.bridge.pydantic import PrivateAttr  # noqa: E402
from llama_index.core.callbacks import CallbackManager  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding, MultiModalEmbedding  # noqa: E402
from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle, TextNode  # noqa: E402

from ..api import Index  # noqa: E402
from ..types import Hit, SearchResult  # noqa: E402

if TYPE_CHECKING:
    from ..encoders import ImageTextEncoder, TextEncoder

# Kept out of what the LLM and the embedding models see: they are for people and programs.
_HIDDEN_KEYS = ["kind", "article_id", "url", "license", "route_scores"]


class MMRetriever(BaseRetriever):
    """Retrieve passages (``TextNode``) and images (``ImageNode``) from an mmretrieve index.

    ``k``: how many articles to search for; the nodes are the top ``k`` items of the fused flat
    list. ``weights``, ``method``, ``article_ids`` and ``filters`` (metadata filters, e.g.
    ``{"license": "CC0", "lang!=": "de"}``) are passed to ``Index.search``.
    """

    def __init__(
        self,
        index: Index,
        *,
        k: int = 10,
        weights: Mapping[str, float] | None = None,
        method: str | None = None,
        article_ids: Sequence[str] | None = None,
        filters: Mapping[str, Any] | Sequence[str] | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.index = index
        self.k = k
        self.weights = dict(weights) if weights else None
        self.method = method
        self.article_ids = list(article_ids) if article_ids is not None else None
        self.filters = filters

    @classmethod
    def from_index(
        cls,
        location: str | Path,
        *,
        k: int = 10,
        text_model: str | None = None,
        image_model: str | None = None,
        text_encoder: TextEncoder | None = None,
        image_encoder: ImageTextEncoder | None = None,
        **options: Any,
    ) -> MMRetriever:
        """Open the existing index at ``location`` (never creates one) and retrieve from it.
        Models are the index's own unless given; ``options`` go to the constructor."""
        index = Index.open(
            location,
            text_model=text_model,
            image_model=image_model,
            create=False,
            text_encoder=text_encoder,
            image_encoder=image_encoder,
        )
        return cls(index, k=k, **options)

    def search(self, query: str | QueryBundle) -> SearchResult:
        """The full mmretrieve result (grouped by article) for a string or a QueryBundle."""
        bundle = QueryBundle(query_str=query) if isinstance(query, str) else query
        text = bundle.query_str if bundle.query_str and bundle.query_str.strip() else None
        return self.index.search(
            text=text,
            image=bundle.image_path or None,
            k=self.k,
            weights=self.weights,
            method=self.method,
            article_ids=self.article_ids,
            filters=self.filters,
        )

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.nodes(self.search(query_bundle))

    def nodes(self, result: SearchResult) -> list[NodeWithScore]:
        """The flat fused hits of ``result`` as LlamaIndex nodes, best first."""
        articles = {g.article.id: g.article for g in result.articles}
        missing = sorted({h.article_id for h in result.hits if h.article_id} - set(articles))
        extra = {
            a.id: {"title": a.title, "url": a.url, "license": a.license}
            for a in self.index.articles(missing).values()
        }
        out = []
        for hit in result.hits:
            about: dict[str, Any] = {}
            if hit.article_id in articles:
                a = articles[hit.article_id]
                about = {"title": a.title, "url": a.url, "license": a.license}
            elif hit.article_id in extra:
                row = extra[hit.article_id]
                about = {k: row.get(k) for k in ("title", "url", "license")}
            out.append(NodeWithScore(node=_node(hit, about), score=float(hit.score)))
        return out


def _node(hit: Hit, about: Mapping[str, Any]) -> TextNode:
    metadata: dict[str, Any] = {
        "kind": hit.kind,
        "article_id": hit.article_id,
        "title": about.get("title"),
        "url": about.get("url"),
        "license": about.get("license"),
        "route_scores": {name: float(s) for name, s in hit.route_scores.items()},
    }
    if hit.kind == "passage":
        if hit.section:
            metadata["section"] = hit.section
        node: TextNode = TextNode(id_=hit.id, text=hit.text or "", metadata=metadata)
    else:
        if hit.caption:
            metadata["caption"] = hit.caption
        node = ImageNode(
            id_=hit.id,
            text=hit.caption or "",
            image_path=hit.uri,
            metadata=metadata,
            image_mimetype=mimetypes.guess_type(hit.uri or "")[0],
        )
    node.excluded_llm_metadata_keys = list(_HIDDEN_KEYS)
    node.excluded_embed_metadata_keys = list(_HIDDEN_KEYS)
    return node


class MMTextEmbedding(BaseEmbedding):
    """A LlamaIndex ``BaseEmbedding`` over an mmretrieve text encoder (BGE or any
    sentence-transformers folder): queries get the model's query instruction, documents do not."""

    _encoder: Any = PrivateAttr()

    def __init__(self, encoder: TextEncoder, *, embed_batch_size: int = 32, **kwargs: Any) -> None:
        super().__init__(
            model_name=str(encoder.info.get("name")), embed_batch_size=embed_batch_size, **kwargs
        )
        self._encoder = encoder

    @classmethod
    def from_model(cls, name_or_path: str, **kwargs: Any) -> MMTextEmbedding:
        """Load a text model by Hugging Face name or local folder."""
        from ..encoders import load_text_encoder

        return cls(load_text_encoder(name_or_path), **kwargs)

    @classmethod
    def from_index(cls, index: Index, **kwargs: Any) -> MMTextEmbedding:
        """The text model ``index`` was built with."""
        return cls(index.text_encoder, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "MMTextEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._encoder.encode_queries([query])[0]]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode_documents(list(texts)).astype(float).tolist()


class MMClipEmbedding(MultiModalEmbedding):
    """A LlamaIndex ``MultiModalEmbedding`` over an mmretrieve CLIP encoder: images and text in
    one space. Images are decoded with the same safety limits as indexing."""

    _encoder: Any = PrivateAttr()
    _max_pixels: int = PrivateAttr()
    _max_bytes: int = PrivateAttr()

    def __init__(
        self,
        encoder: ImageTextEncoder,
        *,
        embed_batch_size: int = 16,
        max_pixels: int = 64_000_000,
        max_bytes: int = 50_000_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model_name=str(encoder.info.get("name")), embed_batch_size=embed_batch_size, **kwargs
        )
        self._encoder = encoder
        self._max_pixels = max_pixels
        self._max_bytes = max_bytes

    @classmethod
    def from_model(cls, name_or_path: str, **kwargs: Any) -> MMClipEmbedding:
        """Load a CLIP model by Hugging Face name or local folder."""
        from ..encoders import load_image_encoder

        return cls(load_image_encoder(name_or_path), **kwargs)

    @classmethod
    def from_index(cls, index: Index, **kwargs: Any) -> MMClipEmbedding:
        """The CLIP model ``index`` was built with."""
        if index.image_encoder is None:
            raise ValueError("this index was built without an image model")
        limits = {
            "max_pixels": index.settings.max_image_pixels,
            "max_bytes": index.settings.max_image_bytes,
        }
        return cls(index.image_encoder, **limits, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "MMClipEmbedding"

    def _decode(self, image: str | BytesIO) -> Any:
        from ..encoders import decode_image

        source = image.getvalue() if isinstance(image, BytesIO) else image
        # At the size the indexer decodes at, as Index.search does.
        return decode_image(
            source, self._encoder, max_pixels=self._max_pixels, max_bytes=self._max_bytes
        )

    def _get_image_embeddings(self, img_file_paths: list[Any]) -> list[list[float]]:
        pictures = [self._decode(p) for p in img_file_paths]
        return self._encoder.encode_images(pictures).astype(float).tolist()

    def _get_image_embedding(self, img_file_path: Any) -> list[float]:
        return self._get_image_embeddings([img_file_path])[0]

    async def _aget_image_embedding(self, img_file_path: Any) -> list[float]:
        return self._get_image_embedding(img_file_path)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode_texts(list(texts)).astype(float).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


__all__ = ["MMClipEmbedding", "MMRetriever", "MMTextEmbedding"]
