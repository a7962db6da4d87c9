"""Ours against the seed's stack, side by side in one process, same corpus, same-architecture
models: the LlamaIndex multi-modal tutorial's MultiModalVectorStoreIndex, a CLIP embedding that
(like LlamaIndex's ClipEmbedding) encodes one item per forward pass in fp32, the bge-small
architecture through LlamaIndex's HuggingFace embedding path, and Qdrant in local mode.

Prints ``ingest_ratio`` (our throughput / seed throughput on the same corpus) and
``query_ratio`` (seed p50 / our p50 for a text query) at ``--vectors`` passages (and a fifth as
many images) in both stores. Both sides hold the same vectors (the seed's Qdrant is loaded from
our generated store) and run the same queries (squad_dev questions, the same photos), and
``stores`` says what each side's store does per query: ours is LanceDB, the seed's Qdrant local
mode scores every vector with NumPy in Python.

Examples:
    python bench/seed_stack.py --quick --json      # under a minute once the models exist
    python bench/seed_stack.py --vectors 100000    # the issue's comparison at 100k
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    CACHE,
    SHARED,
    emit,
    machine,
    percentiles,
    query_pictures,
    random_models,
    synthetic_corpus,
    versions,
    wait_for_quiet,
)
from query import build_store, store_vectors, text_queries
from query import end_to_end as our_queries

# What each side's vector store does per query, printed next to the ratios (docs/BENCHMARKS.md).
STORES = {
    "ours": "LanceDB (embedded), its tables held in memory by the searcher (query.ours."
    "tables_held): exact search by FAISS (8-bit codes plus exact rescoring from 32,768 rows), "
    "BM25 ranked in memory as Lance's full-text index ranks it; a table not held is read "
    "through Lance (an ANN index per vector field past the threshold, see query.ours.ann_fields)",
    "seed": "Qdrant local mode (QdrantClient(path=...)), as in the tutorial: no index, every "
    "query scores every stored vector with NumPy in the Python process",
}


def seed_clip(path: Path) -> Any:
    """A LlamaIndex MultiModalEmbedding over transformers CLIP that, like ClipEmbedding, runs
    one text or one image per forward pass in fp32 (full decode, then CLIP preprocessing)."""
    import torch
    from llama_index.core.embeddings import MultiModalEmbedding
    from PIL import Image
    from transformers import CLIPModel, CLIPTokenizerFast

    from mmretrieve.encoders.preprocess import ClipPreprocess

    model = CLIPModel.from_pretrained(str(path)).eval()
    tokenizer = CLIPTokenizerFast.from_pretrained(str(path))
    preprocess = ClipPreprocess.from_folder(path)

    def feats(out: Any) -> Any:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    class SeedClipEmbedding(MultiModalEmbedding):
        def _get_text_embedding(self, text: str) -> list[float]:
            with torch.no_grad():
                ids = tokenizer([text], truncation=True, max_length=77, return_tensors="pt")
                return feats(model.get_text_features(**ids))[0].tolist()

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

        def _get_image_embedding(self, img_file_path: Any) -> list[float]:
            with torch.no_grad():
                pixels = preprocess(Image.open(img_file_path).convert("RGB"))
                return feats(model.get_image_features(pixel_values=torch.from_numpy(pixels)[None]))[
                    0
                ].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        async def _aget_image_embedding(self, img_file_path: Any) -> list[float]:
            return self._get_image_embedding(img_file_path)

    return SeedClipEmbedding(model_name="seed-clip", embed_batch_size=1)


def seed_models(text_dir: Path, clip_dir: Path) -> tuple[Any, Any]:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(text_dir), device="cpu"), seed_clip(clip_dir)


def _documents(corpus: Path) -> tuple[list[Any], int]:
    from llama_index.core.schema import Document, ImageDocument

    docs: list[Any] = []
    for line in (corpus / "corpus.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        docs.append(Document(text=row["text"], metadata={"title": row["title"]}))
    images = 0
    if (corpus / "images.jsonl").is_file():
        for line in (corpus / "images.jsonl").open(encoding="utf-8"):
            docs.append(ImageDocument(image_path=str(corpus / json.loads(line)["file"])))
            images += 1
    return docs, images


def seed_ingest(corpus: Path, embed: Any, clip: Any, work: Path) -> dict[str, Any]:
    from llama_index.core import StorageContext
    from llama_index.core.indices import MultiModalVectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(work / "qdrant-ingest"))
    text_store = QdrantVectorStore(client=client, collection_name="text_collection")
    image_store = QdrantVectorStore(client=client, collection_name="image_collection")
    storage = StorageContext.from_defaults(vector_store=text_store, image_store=image_store)
    docs, images = _documents(corpus)
    t0 = time.perf_counter()
    index = MultiModalVectorStoreIndex.from_documents(
        docs,
        storage_context=storage,
        embed_model=embed,
        image_embed_model=clip,
        transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=32)],
    )
    seconds = time.perf_counter() - t0
    passages = client.count("text_collection").count
    del index
    client.close()
    return {"seconds": round(seconds, 2), "images": images, "passages": passages}


def our_ingest(corpus: Path, text_dir: Path, clip_dir: Path, work: Path) -> dict[str, Any]:
    from mmretrieve import Index
    from mmretrieve.config import Settings

    index = Index.open(
        work / "ours-ingest",
        text_model=str(text_dir),
        image_model=str(clip_dir),
        settings=Settings(),
    )
    index.text_encoder, index.image_encoder  # noqa: B018 - load before the clock, as the seed
    report = index.add(corpus)
    models = [{k: m.get(k) for k in ("runtime", "dtype")} for m in index.loaded_models()]
    index.close()
    return {
        "seconds": round(report.seconds, 2),
        "images": report.images_encoded,
        "passages": report.passages_encoded,
        "models": models,
    }


def seed_query_store(root: Path, work: Path, embed: Any, clip: Any) -> Any:
    """A Qdrant local-mode store holding exactly our store's passage (bge) and image
    (clip_image) vectors and passage texts, written through LlamaIndex (its payloads), and the
    tutorial's retriever over it."""
    from llama_index.core.indices import MultiModalVectorStoreIndex
    from llama_index.core.schema import ImageNode, TextNode
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from mmretrieve.store.lance import LanceStore

    ours = LanceStore(root)
    texts = {r["id"]: r["text"] for r in ours.scan("passages", ["id", "text"])}
    ours.close()
    client = QdrantClient(path=str(work / "qdrant-query"))
    text_store = QdrantVectorStore(client=client, collection_name="text", batch_size=1024)
    image_store = QdrantVectorStore(client=client, collection_name="image", batch_size=1024)
    step = 5000

    def node_id(our_id: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, our_id))  # Qdrant ids are UUIDs

    ids, vectors = store_vectors(root, "passages", "bge")
    for start in range(0, len(ids), step):
        text_store.add(
            [
                TextNode(id_=node_id(ids[j]), text=texts[ids[j]], embedding=vectors[j].tolist())
                for j in range(start, min(start + step, len(ids)))
            ]
        )
    ids, vectors = store_vectors(root, "images", "clip_image")
    for start in range(0, len(ids), step):
        image_store.add(
            [
                ImageNode(
                    id_=node_id(ids[j]),
                    image_path=f"/images/{ids[j]}.jpg",
                    embedding=vectors[j].tolist(),
                )
                for j in range(start, min(start + step, len(ids)))
            ]
        )
    index = MultiModalVectorStoreIndex.from_vector_store(
        vector_store=text_store,
        image_vector_store=image_store,
        embed_model=embed,
        image_embed_model=clip,
    )
    return client, index.as_retriever(similarity_top_k=10, image_similarity_top_k=10)


def seed_queries(retriever: Any, n: int) -> dict[str, Any]:
    """The same searches as our ``end_to_end``: 2 warm-up ones, then ``n`` timed; search ``i``
    uses ``text_queries(n + 2)[i]`` or ``query_pictures()[i % len]``."""
    texts, pictures = text_queries(n + 2), query_pictures()
    out = {}
    for kind, fn in {
        "text": lambda i: retriever.retrieve(texts[i]),
        "image": lambda i: retriever.image_to_image_retrieve(str(pictures[i % len(pictures)])),
    }.items():
        times = []
        for i in range(n + 2):
            t0 = time.perf_counter()
            fn(i)
            if i >= 2:
                times.append((time.perf_counter() - t0) * 1000)
        out[kind] = percentiles(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, 2k vectors")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--vectors",
        type=int,
        default=None,
        help="passages in the query stores (images: a fifth); default 100000, --quick 2000",
    )
    parser.add_argument("--queries", type=int, default=None, help="per kind (default 20)")
    parser.add_argument(
        "--corpus",
        default=None,
        help="JSONL corpus folder to ingest (default: wiki_tutorial; --quick: a generated one)",
    )
    parser.add_argument("--wait", action="store_true", help="wait for load average < 2.5 first")
    args = parser.parse_args()
    passages = args.vectors or (2000 if args.quick else 100_000)
    images = passages // 5
    n = args.queries or (5 if args.quick else 20)
    load = wait_for_quiet() if args.wait else None
    if args.corpus:
        corpus = Path(args.corpus)
    elif args.quick:
        corpus = synthetic_corpus(CACHE / "corpus-seed-quick", 3, 12, words=400)
    else:
        corpus = SHARED / "data" / "wiki_tutorial"

    # LlamaIndex prints notices on stdout; keep stdout for the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args, corpus, passages, images, n, load)
    emit(result, args.json)


def run(
    args: argparse.Namespace, corpus: Path, passages: int, images: int, n: int, load: float | None
) -> dict[str, Any]:
    text_dir, clip_dir = random_models()
    embed, clip = seed_models(text_dir, clip_dir)
    result: dict[str, Any] = {
        "bench": "seed_stack",
        "machine": machine(),
        "load_at_start": load,
        "corpus": str(corpus),
        "vectors": passages,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours = our_ingest(corpus, text_dir, clip_dir, work)
        seed = seed_ingest(corpus, embed, clip, work)
        for side in (ours, seed):
            side["images_per_s"] = round(side["images"] / side["seconds"], 1)
            side["passages_per_s"] = round(side["passages"] / side["seconds"], 1)
        result["ingest"] = {"ours": ours, "seed": seed}
        result["ingest_ratio"] = round(seed["seconds"] / ours["seconds"], 2)

        root = build_store(
            CACHE / f"store-{passages}-{images}", passages, images, text_dir, clip_dir
        )
        ours_q = our_queries(root, "auto", "auto", n)
        client, retriever = seed_query_store(root, work, embed, clip)
        seed_q = seed_queries(retriever, n)
        client.close()
        result["query"] = {"ours": ours_q, "seed": seed_q}
        result["stores"] = STORES
        result["query_ratio"] = round(seed_q["text"]["p50"] / ours_q["text"]["p50"], 2)
        result["image_query_ratio"] = round(seed_q["image"]["p50"] / ours_q["image"]["p50"], 2)
    result["machine"]["load_avg_end"] = machine()["load_avg"]
    result["versions"] = versions()
    return result


if __name__ == "__main__":
    main()
