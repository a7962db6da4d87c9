"""GPU figures in one run: ingestion (end to end and encoders alone) and query latency with the
models in fp16 on CUDA, written to one JSON file.

Models are RANDOM-weight bge-small and CLIP ViT-B/32 built on the spot (real architectures and
tokenizers, so they cost what the real ones do; tools/random_models.py). Ingestion runs
``bench/ingest.py``'s efficiency measurement on its generated corpora (600 photos; 60 articles of
2,500 words); queries run ``bench/query.py``'s end-to-end searches on a generated index. Every
step records its own wall time; the run stops adding steps once ``--budget`` seconds are spent.

Run it through bench/gpu.sh (installs from downloaded wheels on a machine without network).

Examples:
    python bench/gpu.py --out gpu.json                       # a CUDA machine, fp16
    python bench/gpu.py --device cpu --precision auto --quick --out /tmp/dry.json   # dry run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from common import CACHE, machine, random_models, versions


def cuda_info() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"available": False}
    props = torch.cuda.get_device_properties(0)
    return {
        "available": True,
        "name": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch_cuda": torch.version.cuda,
        "devices": torch.cuda.device_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-results.json"), help="JSON file")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--precision", default="fp16", help="fp16 (default), fp32, auto")
    parser.add_argument("--passages", type=int, default=50_000, help="query index size")
    parser.add_argument("--images", type=int, default=10_000, help="query index images")
    parser.add_argument("--queries", type=int, default=40, help="searches per kind")
    parser.add_argument("--quick", action="store_true", help="small corpora (dry run)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all steps")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not cuda_info()["available"]:
        raise SystemExit("no CUDA device here: run with --device cpu for a dry run")
    from ingest import efficiency
    from query import build_store, end_to_end

    start = time.perf_counter()
    runtime = "torch"
    result: dict[str, Any] = {
        "device": args.device,
        "precision": args.precision,
        "machine": machine(),
        "cuda": cuda_info(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "steps_s": {},
        "errors": {},
    }

    def step(name: str, fn: Any) -> Any:
        spent = time.perf_counter() - start
        if spent > args.budget:
            result["errors"][name] = f"skipped: {spent:.0f} s of the {args.budget:.0f} s spent"
            return None
        t0 = time.perf_counter()
        print(f"gpu.py: {name} ...", file=sys.stderr, flush=True)
        try:
            return fn()
        except Exception as exc:  # one failing step still leaves the others' figures
            result["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            return None
        finally:
            result["steps_s"][name] = round(time.perf_counter() - t0, 1)
            args.out.write_text(json.dumps(result, indent=2))

    text_dir, clip_dir = step("models", random_models) or (None, None)
    if text_dir is not None:
        result["ingest"] = step(
            "ingest", lambda: efficiency(args.quick, runtime, args.precision, args.device)
        )
        passages = 2_000 if args.quick else args.passages
        images = 400 if args.quick else args.images
        root = CACHE / f"store-{passages}-{images}-noview"
        store = step("query_store", lambda: build_store(root, passages, images, text_dir, clip_dir))
        if store is not None:
            n = 5 if args.quick else args.queries
            result["query"] = step(
                "query", lambda: end_to_end(store, runtime, args.precision, n, args.device)
            )
    result["total_s"] = round(time.perf_counter() - start, 1)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result.get(k) for k in ("total_s", "steps_s", "errors")}))


if __name__ == "__main__":
    main()
