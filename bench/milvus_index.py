"""Milvus ANN indexes: recall@k against exact search, latency, build time, memory, disk.

The numbers behind the index policy in ``mmretrieve/store/milvus_spec.py`` and docs/SCALING.md.
Vectors are SYNTHETIC (a Gaussian mixture, L2-normalised: clustered like text embeddings, not
real ones); exact neighbours come from numpy. Memory is what the Milvus process frees when the
collection is released (the standalone process also hosts the data node, so growth on load is
muddied by flushes), and the index files' size, as a loaded index takes about its file size in
memory. Disk is what the collection adds under the server's data directory.

Run it inside the test server's network namespace, so no relay sits in the timings:

    scripts/milvus-server.sh start
    scripts/milvus-server.sh exec .venv/bin/python bench/milvus_index.py --rows 100000 \\
        --dim 384 --json bench/milvus_index.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

CONFIGS: list[tuple[str, dict[str, int], str, list[int]]] = [
    # (index type, build params, search param name, values to sweep)
    ("FLAT", {}, "", [0]),
    ("HNSW", {"M": 8, "efConstruction": 200}, "ef", [16, 32, 64, 128]),
    ("HNSW", {"M": 16, "efConstruction": 200}, "ef", [16, 32, 64, 128, 256]),
    ("HNSW", {"M": 32, "efConstruction": 200}, "ef", [16, 32, 64, 128]),
    ("IVF_FLAT", {"nlist": 1024}, "nprobe", [8, 16, 32, 64]),
    ("IVF_SQ8", {"nlist": 1024}, "nprobe", [8, 16, 32, 64, 128]),
]


def mixture(n: int, dim: int, clusters: int, seed: int, spread: float = 0.9) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres; a larger ``spread`` blurs the clusters
    (0.9: neighbours mostly share a cluster, easy; 2.0+: close to structureless, hard)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    which = rng.integers(0, clusters, n)
    x = centres[which] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def embed(path: Path, model: str | None, limit: int) -> np.ndarray:
    """Unit vectors of the first ``limit`` texts of a JSONL file, from a real text model."""
    from mmretrieve.encoders import load_text_encoder

    if not model:
        raise SystemExit("--embed needs --text-model")
    texts = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip() and len(texts) < limit:
                texts.append(json.loads(line)["text"])
    encoder = load_text_encoder(model, runtime="torch", device="cpu")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))  # queries drawn from the whole file, not its tail
    vectors = encoder.encode_documents([texts[i] for i in order])
    return np.asarray(vectors, dtype=np.float32)


def milvus_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"/milvus") and b"standalone" in cmd:
                return int(entry.name)
    return None


def rss_mib(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def du_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total / 2**20


def run_config(
    client: Any,
    name: str,
    data: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    kind: str,
    build: dict[str, int],
    knob: str,
    values: list[int],
    k: int,
    data_dir: Path | None,
    pid: int | None,
) -> dict[str, Any]:
    from pymilvus import DataType, MilvusClient

    if client.has_collection(name):
        client.drop_collection(name)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=data.shape[1])
    client.create_collection(name, schema=schema, consistency_level="Strong")
    cid = client.describe_collection(name)["collection_id"]
    disk0 = du_mib(data_dir / "data") if data_dir else float("nan")
    index0 = du_mib(data_dir / "data" / "index_files") if data_dir else float("nan")
    t0 = time.perf_counter()
    for start in range(0, len(data), 2000):
        chunk = data[start : start + 2000]
        client.insert(name, [{"id": start + i, "vec": v} for i, v in enumerate(chunk)])
    client.flush(name)
    insert_s = time.perf_counter() - t0
    params = client.prepare_index_params()
    params.add_index("vec", index_type=kind, metric_type="IP", params=build)
    t0 = time.perf_counter()
    client.create_index(name, params)
    while True:
        info = client.describe_index(name, "vec")
        if info.get("state") == "Finished" or int(info.get("pending_index_rows", 1)) == 0:
            break
        time.sleep(0.5)
    build_s = time.perf_counter() - t0
    index_mib = du_mib(data_dir / "data" / "index_files") - index0 if data_dir else float("nan")
    client.load_collection(name)
    time.sleep(2)
    rss_loaded = rss_mib(pid)
    out: dict[str, Any] = {
        "index": kind,
        "build": build,
        "rows": len(data),
        "dim": data.shape[1],
        "insert_rows_per_s": round(len(data) / insert_s),
        "build_s": round(build_s, 1),
        "index_files_mib": round(index_mib, 1),
        "sweep": [],
    }
    if data_dir:
        out["disk_mib"] = round(du_mib(data_dir / "data") - disk0, 1)
        out["insert_log_mib"] = round(du_mib(data_dir / "data" / "insert_log" / str(cid)), 1)
    for value in values:
        search_params: dict[str, Any] = {
            "metric_type": "IP",
            "params": {knob: value} if knob else {},
        }
        # "Session" as the store reads: "Strong" waits for the 200 ms time tick on every search
        opts = {"limit": k, "search_params": search_params, "consistency_level": "Session"}
        client.search(name, data=[queries[0]], **opts)  # warm
        latencies, found = [], []
        for q in queries:
            t0 = time.perf_counter()
            res = client.search(name, data=[q], **opts)
            latencies.append((time.perf_counter() - t0) * 1000)
            found.append([h["id"] for h in res[0]])
        recall = np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)])
        latencies.sort()
        out["sweep"].append(
            {
                knob or "exact": value,
                f"recall@{k}": round(float(recall), 4),
                "p50_ms": round(statistics.median(latencies), 2),
                "p95_ms": round(latencies[int(0.95 * len(latencies)) - 1], 2),
            }
        )
    client.release_collection(name)
    time.sleep(3)
    out["rss_freed_on_release_mib"] = round(rss_loaded - rss_mib(pid), 1)
    client.drop_collection(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default="http://127.0.0.1:19530", help="Milvus address")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=0.9, help="cluster blur (see mixture)")
    parser.add_argument("--only", default=None, help="comma-separated index types to run")
    parser.add_argument("--nlist", type=int, default=1024, help="IVF lists (per segment)")
    parser.add_argument(
        "--embed",
        type=Path,
        default=None,
        help="REAL vectors instead: embed the 'text' of every line of this JSONL file "
        "(with --text-model); the last --queries lines are the queries",
    )
    parser.add_argument("--text-model", default=None, help="model folder or name for --embed")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".cache/milvus/data"),
        help="the server's data folder, for disk use (scripts/milvus-server.sh)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)

    from pymilvus import MilvusClient

    client = MilvusClient(uri=args.uri)
    if args.embed:
        data = embed(args.embed, args.text_model, args.rows + args.queries)
    else:
        data = mixture(args.rows + args.queries, args.dim, args.clusters, 0, args.spread)
    rows = min(args.rows, len(data) - args.queries)
    data, queries = data[:rows], data[rows : rows + args.queries]
    truth = np.argsort(-(queries @ data.T), axis=1)[:, : args.k]
    pid = milvus_pid()
    data_dir = args.data_dir if args.data_dir.exists() else None
    results = {
        "server": client.get_server_version(),
        "cpus": os.cpu_count(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": [],
    }
    wanted = set(args.only.upper().split(",")) if args.only else None
    for kind, build, knob, values in CONFIGS:
        if wanted and kind not in wanted:
            continue
        if "nlist" in build:
            build = {**build, "nlist": args.nlist}
        result = run_config(
            client,
            "bench_ann",
            data,
            queries,
            truth,
            kind,
            build,
            knob,
            values,
            args.k,
            data_dir,
            pid,
        )
        print(json.dumps(result), flush=True)
        results["runs"].append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
