"""Distributed ingestion on a local Ray (``ray.init(num_cpus=2)``) writes exactly what local
ingestion writes, and re-runs are idempotent: FAKE encoders (tests/fakes.py) handed to
``add_with_ray``, a tiny corpus. And the path users run, ``mmretrieve index ... --ray auto``, each
worker loading tiny real-architecture models from the index's settings."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import fakes
from fakes import FakeClipEncoder, FakeTextEncoder
from mmretrieve import Index
from mmretrieve.distributed.ray_ingest import add_with_ray

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason="ray not installed (pip install 'mmretrieve[ray]')")

TEXTS = {
    "Batman": "Batman is a superhero. Bruce Wayne is the secret identity of Batman. "
    "He fights crime in Gotham City with the Batmobile.",
    "Vincent van Gogh": "Vincent van Gogh was a Dutch painter. His paintings include The Starry "
    "Night and Sunflowers. He painted with bold colours.",
    "Tomato": "The tomato is a red fruit. Tomato soup and tomato sauce are common dishes.",
    "Gotham": "Gotham City is a fictional city. It is the home of Batman and many villains.",
    "Sunflower": "The sunflower is a tall plant with a large yellow flower head.",
}


def fake_encoders() -> tuple[FakeTextEncoder, FakeClipEncoder]:
    """Built inside each Ray actor (sent by value, like the fakes module)."""
    return FakeTextEncoder(), FakeClipEncoder()


@pytest.fixture(scope="module")
def local_ray():
    ray.cloudpickle.register_pickle_by_value(fakes)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _corpus(root: Path) -> Path:
    for n, (title, text) in enumerate(TEXTS.items()):
        folder = root / title.replace(" ", "_")
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(text, encoding="utf-8")
        (folder / "meta.json").write_text(json.dumps({"id": f"wiki:en:{title}", "title": title}))
        pixels = np.random.default_rng(n).integers(0, 255, (40, 60, 3), dtype=np.uint8)
        PILImage.fromarray(pixels).save(folder / "photo.png")
        (folder / "images.jsonl").write_text(
            json.dumps({"file": "photo.png", "caption": f"a picture for {title}"}) + "\n"
        )
    (root / "Batman" / "broken.png").write_bytes(b"not an image")  # skipped by both paths
    return root


def _open(location: str | Path) -> Index:
    text, clip = fake_encoders()
    return Index.open(location, text_encoder=text, image_encoder=clip)


def _rows(index: Index) -> dict[str, list[dict]]:
    """Every row of every table, vectors included (as float lists), sorted by id."""
    from mmretrieve.store import table_schemas

    models = index.manifest["models"]
    out = {}
    view = bool(index.settings.clip_text_view)
    for schema in table_schemas(models["text"]["dim"], models["image"]["dim"], clip_text_view=view):
        names = [*schema.field_names, *schema.vectors]
        rows = [
            {k: np.asarray(v).round(6).tolist() if k in schema.vectors else v for k, v in r.items()}
            for r in index.store.scan(schema.name, names)
        ]
        out[schema.name] = sorted(rows, key=lambda r: r["id"])
    return out


def _counts(report) -> dict:
    data = report.as_dict()
    data.pop("seconds")
    data["skipped"] = sorted((s["path"], s["reason"]) for s in data["skipped"])
    return data


def test_ray_ingest_equals_local_and_is_idempotent(tmp_path, local_ray):
    corpus = _corpus(tmp_path / "corpus")
    local = _open(tmp_path / "local")
    local_report = local.add(corpus)
    distributed = _open(tmp_path / "ray")
    ray_report = add_with_ray(distributed, corpus, workers=2, encoders=fake_encoders)

    assert _counts(ray_report) == _counts(local_report)
    assert ray_report.articles_added == len(TEXTS) and len(ray_report.skipped) == 1
    assert _rows(distributed) == _rows(local)

    again = add_with_ray(distributed, corpus, workers=2, encoders=fake_encoders)
    assert (again.passages_encoded, again.images_encoded) == (0, 0)
    assert (again.articles_unchanged, again.images_unchanged) == (len(TEXTS), len(TEXTS))

    (corpus / "Tomato" / "article.txt").write_text("The tomato is a berry.", encoding="utf-8")
    shutil.rmtree(corpus / "Sunflower")
    local_edit = local.add(corpus, prune=True)
    ray_edit = add_with_ray(distributed, corpus, workers=2, encoders=fake_encoders, prune=True)
    assert _counts(ray_edit) == _counts(local_edit)
    assert (ray_edit.articles_updated, ray_edit.articles_pruned) == (1, 1)
    assert _rows(distributed) == _rows(local)
    hit = distributed.search(text="tomato berry", k=1).articles[0]
    assert hit.article.id == "wiki:en:Tomato"


def test_ray_ingest_into_milvus_equals_local(tmp_path, local_ray):
    """`mmretrieve index ./wiki --store milvus://... --ray auto` in miniature."""
    pytest.importorskip("pymilvus", reason="pymilvus not installed")
    address = os.environ.get("MMRETRIEVE_MILVUS_URI", "127.0.0.1:19530").split("://")[-1]
    host, _, port = address.rstrip("/").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        reason = f"no Milvus server at {address} ({exc}); run `scripts/milvus-server.sh start`"
        if os.environ.get("MMRETRIEVE_REQUIRE_MILVUS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    corpus = _corpus(tmp_path / "corpus")
    local = _open(tmp_path / "local")
    local.add(corpus)
    remote = _open(f"milvus://{address.rstrip('/')}/ray_{uuid.uuid4().hex[:10]}?index=flat")
    try:
        report = add_with_ray(remote, corpus, workers=2, encoders=fake_encoders)
        assert report.articles_added == len(TEXTS)
        assert _rows(remote) == _rows(local)
    finally:
        remote.store.drop()  # type: ignore[attr-defined]
        remote.close()


def test_cli_index_with_ray_auto_loads_the_models_in_each_worker(
    tmp_path, tiny_text_model_dir, tiny_clip_model_dir
):
    """The path users run: `mmretrieve index ... --ray auto`, each worker loading the (tiny,
    RANDOM-weight, real-architecture) models from the index's settings. Same result as a local
    `mmretrieve index`. Separate processes: the Ray started here is not this module's."""
    import subprocess

    corpus = _corpus(tmp_path / "corpus")
    models = ["--text-model", str(tiny_text_model_dir), "--image-model", str(tiny_clip_model_dir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("RAY_ADDRESS", None)  # `auto`: a Ray of its own on this machine

    def index(name: str, *extra: str) -> dict:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mmretrieve.interfaces.cli",
                "index",
                str(corpus),
                "--index",
                str(tmp_path / name),
                *models,
                "--no-progress",
                "--json",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert done.returncode == 3, done.stderr[-3000:]  # 3: finished, skipped broken.png
        report = json.loads(done.stdout[done.stdout.index("{") :])["report"]
        report.pop("seconds")
        return report

    distributed = index("ray", "--ray", "auto", "--ray-workers", "2")
    local = index("local")
    assert distributed == local
    assert distributed["articles_added"] == len(TEXTS) and distributed["images_added"] == len(TEXTS)
    ray_index, local_index = Index.open(tmp_path / "ray"), Index.open(tmp_path / "local")
    try:
        for q in ("Bruce Wayne", "tomato soup"):
            a = [(h.id, round(h.score, 4)) for h in ray_index.search(text=q, k=3).hits]
            b = [(h.id, round(h.score, 4)) for h in local_index.search(text=q, k=3).hits]
            assert a == b
    finally:
        ray_index.close()
        local_index.close()
