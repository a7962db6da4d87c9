"""The LlamaIndex integration with llama-index-core installed, offline: MMRetriever by text, by
image and by both (node types and metadata), inside a RetrieverQueryEngine with a mock LLM, and
the embedding adapters inside LlamaIndex's own MultiModalVectorStoreIndex. Encoders are the FAKE
deterministic ones of tests/fakes.py; the index is a real LanceDB store in a temp dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip(
    "llama_index.core", reason="llama-index-core (llamaindex extra) is not installed"
)

from llama_index.core.schema import ImageNode, MetadataMode, QueryBundle, TextNode  # noqa: E402

from fakes import FakeClipEncoder, FakeTextEncoder  # noqa: E402
from mmretrieve import Index  # noqa: E402
from mmretrieve.integrations.llama_index import (  # noqa: E402
    MMClipEmbedding,
    MMRetriever,
    MMTextEmbedding,
)

ARTICLES = {
    "Batman": "Batman is a superhero. Bruce Wayne is the secret identity of Batman. "
    "He fights crime in Gotham City with the Batmobile.",
    "Vincent van Gogh": "Vincent van Gogh was a Dutch painter. His paintings include The Starry "
    "Night and Sunflowers.",
    "Tomato": "The tomato is a red fruit. Tomato soup and tomato sauce are common dishes.",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("li") / "corpus"
    for n, (title, text) in enumerate(ARTICLES.items()):
        folder = root / title.replace(" ", "_")
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(text, encoding="utf-8")
        meta = {
            "id": f"wiki:en:{title}",
            "title": title,
            "url": f"https://en.wikipedia.org/wiki/{title.replace(' ', '_')}",
        }
        (folder / "meta.json").write_text(json.dumps(meta))
        pixels = np.random.default_rng(n).integers(0, 255, (40, 60, 3), dtype=np.uint8)
        PILImage.fromarray(pixels).save(folder / "photo.png")
    (root / "Tomato" / "images.jsonl").write_text(
        json.dumps({"file": "photo.png", "caption": "a bowl of tomato soup"}) + "\n"
    )
    return root


@pytest.fixture(scope="module")
def index_dir(corpus: Path) -> Path:
    where = corpus.parent / "idx"
    with Index.open(
        where, text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    ) as index:
        index.add(corpus)
    return where


@pytest.fixture(scope="module")
def retriever(index_dir: Path) -> MMRetriever:
    return MMRetriever.from_index(
        index_dir, k=3, text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )


def test_retrieve_by_text(retriever: MMRetriever) -> None:
    nodes = retriever.retrieve("Who is Bruce Wayne?")
    assert 0 < len(nodes) <= 3
    first = nodes[0]
    assert isinstance(first.node, TextNode) and not isinstance(first.node, ImageNode)
    meta = first.node.metadata
    assert meta["kind"] == "passage" and meta["article_id"] == "wiki:en:Batman"
    assert meta["title"] == "Batman" and meta["url"] == "https://en.wikipedia.org/wiki/Batman"
    assert "text->passage:dense" in meta["route_scores"]
    assert "Bruce Wayne" in first.node.get_content()
    scores = [n.score or 0.0 for n in nodes]
    assert scores == sorted(scores, reverse=True)
    llm_view = first.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "Batman" in llm_view and "route_scores" not in llm_view


def test_retriever_filters(index_dir: Path) -> None:
    """Metadata filters reach the search: only the kept article's items come back."""
    kept = MMRetriever.from_index(
        index_dir,
        k=3,
        text_encoder=FakeTextEncoder(),
        image_encoder=FakeClipEncoder(),
        filters={"url": "https://en.wikipedia.org/wiki/Tom*"},
    )
    nodes = kept.retrieve("Who is Bruce Wayne?")
    assert nodes and {n.node.metadata["article_id"] for n in nodes} == {"wiki:en:Tomato"}


def test_retrieve_by_image(retriever: MMRetriever, corpus: Path) -> None:
    photo = corpus / "Vincent_van_Gogh" / "photo.png"
    nodes = retriever.retrieve(QueryBundle(query_str="", image_path=str(photo)))
    first = nodes[0]
    assert isinstance(first.node, ImageNode)
    assert first.node.image_path == str(photo.resolve())
    assert first.node.metadata["title"] == "Vincent van Gogh"
    assert first.node.metadata["route_scores"]["image->image"] == pytest.approx(1.0, abs=1e-5)
    assert first.node.image_mimetype == "image/png"


def test_retrieve_by_text_and_image(retriever: MMRetriever, corpus: Path) -> None:
    bundle = QueryBundle(query_str="tomato soup", image_path=str(corpus / "Tomato" / "photo.png"))
    nodes = retriever.retrieve(bundle)
    kinds = {type(n.node) for n in nodes}
    assert kinds == {TextNode, ImageNode}
    assert all(n.node.metadata["article_id"] == "wiki:en:Tomato" for n in nodes[:2])
    captioned = [n for n in nodes if isinstance(n.node, ImageNode)][0]
    assert captioned.node.metadata["caption"] == "a bowl of tomato soup"
    grouped = retriever.search(bundle)
    assert grouped.articles[0].article.title == "Tomato"


def test_retriever_in_query_engine(retriever: MMRetriever) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(max_tokens=8))
    response = engine.query("Who is Bruce Wayne?")
    assert response.source_nodes
    assert response.source_nodes[0].node.metadata["title"] == "Batman"


def test_embedding_adapters_in_multimodal_index(corpus: Path) -> None:
    from llama_index.core.indices.multi_modal.base import MultiModalVectorStoreIndex

    text_model, clip_model = MMTextEmbedding(FakeTextEncoder()), MMClipEmbedding(FakeClipEncoder())
    assert len(text_model.get_query_embedding("bruce wayne")) == 64
    assert len(clip_model.get_image_embedding(str(corpus / "Batman" / "photo.png"))) == 48
    nodes = [TextNode(text=text, metadata={"title": title}) for title, text in ARTICLES.items()]
    nodes += [
        ImageNode(image_path=str(p), metadata={"title": p.parent.name})
        for p in sorted(corpus.glob("*/photo.png"))
    ]
    mm_index = MultiModalVectorStoreIndex(
        nodes, embed_model=text_model, image_embed_model=clip_model
    )
    mm_retriever = mm_index.as_retriever(similarity_top_k=1, image_similarity_top_k=1)
    found = mm_retriever.retrieve("Bruce Wayne Batman")
    texts = [n for n in found if not isinstance(n.node, ImageNode)]
    assert texts and texts[0].node.metadata["title"] == "Batman"
    same = mm_retriever.image_to_image_retrieve(str(corpus / "Tomato" / "photo.png"))
    assert same[0].node.metadata["title"] == "Tomato"
    assert same[0].score == pytest.approx(1.0, abs=1e-5)


def test_import_mmretrieve_does_not_import_llama_index() -> None:
    code = "import sys, mmretrieve; print('llama_index' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
