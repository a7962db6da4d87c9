"""Runtime parity (DESIGN §4): every runtime and precision gives the same rankings as PyTorch fp32
on the same inputs, and each vector has cosine >= 0.99 with its fp32 reference. On tiny and
full-size random models of the real architectures and on the REAL all-MiniLM-L6-v2. Also: the
ONNX runtime indexes and searches with torch made unimportable (the lean [onnx] install).

Full-size random CLIP ViT-B/32 (600 MB of ONNX, minutes to export) runs with
MMRETRIEVE_FULL_PARITY=1; its figures are in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("torch")
pytest.importorskip("openvino")

from mmretrieve.encoders import load_image_encoder, load_text_encoder  # noqa: E402
from mmretrieve.encoders.onnx_export import export_model  # noqa: E402
from mmretrieve.encoders.runtime import cpu_supports_bf16  # noqa: E402

MIN_COSINE = 0.99
# int8 is opt-in: its worst vector on the real all-MiniLM-L6-v2 (a one-letter text) is ~0.987;
# on whole sentences and passages it stays >= 0.99 (docs/BENCHMARKS.md).
INT8_MIN_COSINE = 0.98
SRC = Path(__file__).resolve().parents[2] / "src"
DOCS = [
    "Batman is a superhero who appears in American comic books published by DC Comics.",
    "Bruce Wayne is the secret identity of Batman; he fights crime in Gotham City.",
    "Vincent van Gogh was a Dutch Post-Impressionist painter of The Starry Night.",
    "The tomato is the edible berry of the plant Solanum lycopersicum. " * 6,
    "Super Bowl 50 was an American football game played at Levi's Stadium in 2016.",
    "Paris is the capital and most populous city of France, on the river Seine.",
    "x",
    "Gotham City",
]
QUERIES = ["Who is Bruce Wayne?", "Dutch painter", "red fruit soup", "football final", "Paris"]


def _variants(kind: str) -> list[tuple[str, str, str]]:
    """(runtime, precision, workload). torch bf16 on CPU keeps other weights per workload:
    "index" bfloat16 only; "query" float32 for small batches, a bfloat16 copy for batches."""
    out = [("onnx", "fp32", "index"), ("onnx", "int8", "index"), ("openvino", "fp32", "query")]
    if cpu_supports_bf16():
        out += [("torch", "bf16", "index"), ("torch", "bf16", "query")]
        out += [("openvino", "bf16", "query")]  # what "auto" picks for queries where fastest
        out += [("openvino", "bf16", "index")]  # throughput streams, a batch's rows split
    return out


def _images() -> list:
    from PIL import Image

    rng = np.random.default_rng(1)
    sizes = [(224, 224), (300, 500), (500, 300), (64, 80), (1000, 40)]
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]
    gradient = np.linspace(0, 255, 224 * 224 * 3).reshape(224, 224, 3).astype(np.uint8)
    images.append(Image.fromarray(gradient))
    return images


def assert_parity(ref: np.ndarray, got: np.ndarray, what: str) -> None:
    """Per-vector cosine >= MIN_COSINE (INT8_MIN_COSINE for int8), unit rows, float32."""
    assert got.dtype == np.float32 and got.shape == ref.shape, what
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cos = (ref * got).sum(axis=1)
    bar = INT8_MIN_COSINE if "int8" in what else MIN_COSINE
    assert cos.min() >= bar, f"{what}: worst cosine {cos.min():.4f} (all {cos.round(4)})"


def assert_same_ranking(ref_q, ref_d, got_q, got_d, what: str) -> None:
    """Every query ranks the documents in the same order, except swaps between documents whose
    fp32 scores are closer than the runtimes' own differences can decide (ties within 0.01)."""
    ref_scores, got_scores = ref_q @ ref_d.T, got_q @ got_d.T
    for i, (r, g) in enumerate(zip(ref_scores, got_scores, strict=True)):
        order = np.argsort(-r)
        got_order = np.argsort(-g)
        for rank, (a, b) in enumerate(zip(order, got_order, strict=True)):
            assert a == b or abs(r[a] - r[b]) < 0.01, f"{what}: query {i} differs at rank {rank}"


@pytest.fixture(scope="module")
def onnx_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")


def _export(src: Path, out: Path) -> Path:
    if not (out / "mmretrieve_export.json").is_file():
        export_model(str(src), out)
    return out


@pytest.fixture(scope="module")
def tiny_text_onnx(tiny_text_model_dir, onnx_root) -> Path:
    return _export(tiny_text_model_dir, onnx_root / "tiny-text")


@pytest.fixture(scope="module")
def tiny_clip_onnx(tiny_clip_model_dir, onnx_root) -> Path:
    return _export(tiny_clip_model_dir, onnx_root / "tiny-clip")


@pytest.fixture(scope="module")
def minilm_onnx(minilm_dir, onnx_root) -> Path:
    return _export(minilm_dir, onnx_root / "minilm")


@pytest.fixture(scope="module")
def bge_random_dirs(onnx_root) -> tuple[Path, Path]:
    """Full-size bge-small architecture with random weights, and its ONNX export."""
    from tools.random_models import build_text_model

    from conftest import SHARED

    tok = SHARED / "models" / "bge-small-en-v1.5-tokenizer"
    if not tok.is_dir():
        pytest.skip(f"shared data not present: {tok}")
    src = build_text_model(onnx_root / "bge-small-random", tokenizer_dir=tok, seed=3)
    return src, _export(src, onnx_root / "bge-small-random-onnx")


def _text_parity(src: Path, onnx_dir: Path, what: str) -> None:
    ref = load_text_encoder(str(src), device="cpu")
    ref_d, ref_q = ref.encode_documents(DOCS), ref.encode_queries(QUERIES)
    assert ref.info["dtype"] == "float32"
    for runtime, precision, workload in _variants("text"):
        folder = src if runtime == "torch" else onnx_dir
        enc = load_text_encoder(
            str(folder), runtime=runtime, precision=precision, device="cpu", workload=workload
        )
        assert enc.info["runtime"] == runtime and enc.dim == ref.dim
        label = f"{what} {runtime}/{precision}/{workload}"
        got_d, got_q = enc.encode_documents(DOCS), enc.encode_queries(QUERIES)
        assert_parity(ref_d, got_d, label + " documents")
        assert_parity(ref_q, got_q, label + " queries")
        one = np.concatenate([enc.encode_queries([q]) for q in QUERIES])  # single-row batches
        assert_parity(ref_q, one, label + " single queries")
        assert_same_ranking(ref_q, ref_d, got_q, got_d, label)
        assert enc.count_tokens(DOCS) == ref.count_tokens(DOCS)


def _clip_parity(src: Path, onnx_dir: Path, what: str) -> None:
    ref = load_image_encoder(str(src), device="cpu")
    images = _images()
    ref_i, ref_t = ref.encode_images(images), ref.encode_texts(DOCS + QUERIES)
    for runtime, precision, workload in _variants("image"):
        folder = src if runtime == "torch" else onnx_dir
        enc = load_image_encoder(
            str(folder), runtime=runtime, precision=precision, device="cpu", workload=workload
        )
        label = f"{what} {runtime}/{precision}/{workload}"
        got_i, got_t = enc.encode_images(images), enc.encode_texts(DOCS + QUERIES)
        assert_parity(ref_i, got_i, label + " images")
        assert_parity(ref_t, got_t, label + " texts")
        one = np.concatenate([enc.encode_images([im]) for im in images[:2]])
        assert_parity(ref_i[:2], one, label + " single images")
        assert_same_ranking(ref_t, ref_i, got_t, got_i, label + " text->image")
        assert_same_ranking(ref_i, ref_i, got_i, got_i, label + " image->image")


def test_tiny_text_parity(tiny_text_model_dir, tiny_text_onnx) -> None:
    _text_parity(tiny_text_model_dir, tiny_text_onnx, "tiny bge")


def test_tiny_clip_parity(tiny_clip_model_dir, tiny_clip_onnx) -> None:
    _clip_parity(tiny_clip_model_dir, tiny_clip_onnx, "tiny clip")


@pytest.mark.realmodel
def test_real_minilm_parity(minilm_dir, minilm_onnx) -> None:
    _text_parity(minilm_dir, minilm_onnx, "all-MiniLM-L6-v2")


def test_full_size_bge_random_parity(bge_random_dirs) -> None:
    _text_parity(*bge_random_dirs, "bge-small random")


@pytest.mark.skipif(not os.environ.get("MMRETRIEVE_FULL_PARITY"), reason="MMRETRIEVE_FULL_PARITY")
def test_full_size_clip_random_parity(onnx_root) -> None:
    from tools.random_models import build_clip_model

    from conftest import SHARED

    vocab = SHARED / "models" / "clip-vit-b-32-tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
    src = build_clip_model(onnx_root / "clip-random", bpe_vocab=vocab, seed=3)
    _clip_parity(src, _export(src, onnx_root / "clip-random-onnx"), "CLIP ViT-B/32 random")


def test_export_folder_is_self_contained(tiny_clip_onnx, tiny_text_onnx) -> None:
    info = json.loads((tiny_clip_onnx / "mmretrieve_export.json").read_text())
    assert info["kind"] == "image" and "onnx/vision_model_int8.onnx" in info["files"]
    for folder in (tiny_clip_onnx, tiny_text_onnx):
        assert (folder / "tokenizer.json").is_file() and (folder / "config.json").is_file()
        assert not list(folder.glob("*.safetensors"))


def test_export_cache_serves_the_same_model_name(tiny_text_model_dir, tmp_path, monkeypatch):
    """`models export NAME` with no --out: `--runtime onnx` finds it for NAME, and the index
    manifest records the same model identity as with torch, plus the runtime used."""
    from mmretrieve import Index
    from mmretrieve.config import Settings

    monkeypatch.setenv("MMRETRIEVE_ONNX_CACHE", str(tmp_path / "cache"))
    folder = export_model(str(tiny_text_model_dir), int8=False)
    assert folder.parent == tmp_path / "cache"
    enc = load_text_encoder(str(tiny_text_model_dir), runtime="onnx")
    assert enc.info["runtime"] == "onnx" and enc.info["dtype"] == "float32"
    torch_enc = load_text_encoder(str(tiny_text_model_dir))
    assert enc.info["revision"] == torch_enc.info["revision"]

    settings = Settings(runtime="onnx", precision="fp32", image_model=None)
    with Index.open(tmp_path / "idx", text_model=str(tiny_text_model_dir), settings=settings) as ix:
        assert ix.manifest["runtime"]["text"] == {
            "runtime": "onnx",
            "dtype": "float32",
            "device": "cpu",
        }


NO_TORCH_SCRIPT = """
import sys
for name in ("torch", "transformers", "sentence_transformers", "safetensors"):
    sys.modules[name] = None  # as if not installed: importing them raises ImportError
from pathlib import Path
from PIL import Image
import numpy as np
from mmretrieve import Index
from mmretrieve.config import Settings

text_dir, clip_dir, work = (Path(a) for a in sys.argv[1:4])
corpus = work / "corpus"
corpus.mkdir()
(corpus / "Batman.txt").write_text("Batman is a superhero. Bruce Wayne is Batman. " * 20)
(corpus / "Tomato.txt").write_text("The tomato is a red fruit used in soup. " * 20)
pixels = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
Image.fromarray(pixels).save(corpus / "photo.jpg")
settings = Settings(runtime="auto", precision="auto", chunk_tokens=32, chunk_overlap=4)
with Index.open(work / "idx", text_model=str(text_dir), image_model=str(clip_dir),
                settings=settings) as index:
    report = index.add(corpus)
    assert (report.articles_added, report.images_added) == (2, 1), report
    runtime = index.manifest["runtime"]
    # auto without torch: measured among the engines that run the ONNX files.
    engines = {runtime["text"]["runtime"], runtime["image"]["runtime"]}
    assert engines <= {"onnx", "openvino"}, runtime
    result = index.search(text="Who is Bruce Wayne?", image=corpus / "photo.jpg", k=2)
    assert result.articles, result
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers"}
               and sys.modules[m] is not None)
assert not heavy, heavy
print("ok")
"""


def test_onnx_indexes_and_searches_without_torch(tiny_text_onnx, tiny_clip_onnx, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(NO_TORCH_SCRIPT),
            str(tiny_text_onnx),
            str(tiny_clip_onnx),
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


FIRST_CALLS_AT_ONCE = """
import sys, threading
from mmretrieve.encoders import load_image_encoder, load_text_encoder
text = load_text_encoder(sys.argv[1], runtime="openvino", precision="fp32", workload="query")
clip = load_image_encoder(sys.argv[2], runtime="openvino", precision="fp32", workload="query")
start = threading.Barrier(3)
def one(fn):
    start.wait()
    fn(["who is batman"])
jobs = [threading.Thread(target=one, args=(f,)) for f in (text.encode_queries, clip.encode_texts)]
jobs.append(threading.Thread(target=lambda: (start.wait(), text.encode_documents(["x y"]))))
for job in jobs:
    job.start()
for job in jobs:
    job.join(30)
print("hung" if any(job.is_alive() for job in jobs) else "ok", flush=True)
import os
os._exit(0)
"""


def test_openvino_first_calls_from_threads_at_once_do_not_hang(
    tiny_text_onnx, tiny_clip_onnx
) -> None:
    """The batchers' first queries reach OpenVINO from several threads at once; its binding's
    first NumPy lookup deadlocked there (encoders/openvino.py). Fresh processes, each racing."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    for _ in range(4):
        result = subprocess.run(
            [sys.executable, "-c", FIRST_CALLS_AT_ONCE, str(tiny_text_onnx), str(tiny_clip_onnx)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_openvino_bf16_compiles_from_an_ir_made_once_into_the_cache(
    tiny_text_onnx, tmp_path, monkeypatch
) -> None:
    """bf16 sessions read an fp16-weight IR made from the ONNX file (less memory, faster load):
    made once into the export cache (never into the model folder, whose files make its
    revision), made again when the ONNX file changes, and skipped, or ignored when it cannot be
    read, in favour of the ONNX file; its vectors within parity of ONNX Runtime fp32."""
    import shutil

    import openvino as ov

    from mmretrieve.encoders import openvino as ov_module
    from mmretrieve.encoders.openvino import ir_for
    from mmretrieve.encoders.resolve import folder_fingerprint
    from mmretrieve.encoders.runtime import onnx_file

    monkeypatch.setenv("MMRETRIEVE_ONNX_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    shutil.copytree(tiny_text_onnx, folder)
    revision = folder_fingerprint(folder)
    source = onnx_file(folder, "text", "fp32")
    assert source is not None
    core = ov.Core()
    ir = ir_for(core, source)
    assert ir is not None and ir.is_file() and ir.with_suffix(".bin").is_file()
    assert (tmp_path / "cache") in ir.parents and not list(ir.parent.parent.glob(".ir-*"))
    assert ir_for(core, source) == ir  # made once
    assert cpu_supports_bf16(), "the CI machines have native bf16"
    encoder = load_text_encoder(str(folder), runtime="openvino", precision="bf16")
    reference = load_text_encoder(str(folder), runtime="onnx", precision="fp32")
    texts = ["a short one", "Batman is a superhero who lives in Gotham City. " * 8]
    assert_parity(reference.encode_documents(texts), encoder.encode_documents(texts), "ir bf16")
    assert folder_fingerprint(folder) == revision  # the model folder is untouched

    later = ir.stat().st_mtime_ns + 10**9
    os.utime(source, ns=(later, later))  # the ONNX file changed: another IR
    again = ir_for(core, source)
    assert again is not None and again != ir

    # An IR this OpenVINO cannot read: the ONNX file is compiled instead.
    again.write_text("<not an IR>")
    encoder = load_text_encoder(str(folder), runtime="openvino", precision="bf16")
    assert_parity(reference.encode_documents(texts), encoder.encode_documents(texts), "onnx bf16")

    # No cache to write into (read-only, full): the ONNX file is compiled itself.
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setenv("MMRETRIEVE_ONNX_CACHE", str(tmp_path / "other-cache"))
    monkeypatch.setattr(ov_module.tempfile, "mkdtemp", refuse)
    assert ir_for(core, source) is None
    encoder = load_text_encoder(str(folder), runtime="openvino", precision="bf16")
    assert_parity(reference.encode_documents(texts), encoder.encode_documents(texts), "onnx bf16")
