"""Load test of ``mmretrieve serve`` on loopback: N concurrent clients for T seconds, mixing text,
image and combined queries; counts errors and timeouts and reports p50 / p90 / p99 latency and
throughput; then ``concurrency_gain`` (throughput with N clients / with one client, measured
against the same server in the same run) and the first query of each kind after the server
starts against the same query warm (``first_vs_warm``).

Bounded on purpose: the server is the real ``mmretrieve serve`` command started here on
127.0.0.1 (any other address is refused), at most 200 clients and 600 seconds. Every client keeps
one connection open and sends its next query as soon as the previous answer arrives.

The index is built from ../shared/data/wiki_tutorial with ``mmretrieve index`` when absent: the
real all-MiniLM-L6-v2 text model and a RANDOM CLIP of the real architecture (tiny by default,
``--clip-size base`` for the full ViT-B/32 cost) made by tools/random_models.py. Query images are
../shared/data/query_images (sent as base64 JSON, shrunk to at most 512 pixels a side).

Example:
    python bench/load.py --clients 50 --seconds 60
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMRETRIEVE_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))

TEXTS = [
    "Who is Bruce Wayne?",
    "Bat man",
    "Starry Night painter",
    "electric car with falcon wing doors",
    "Korean boy band",
    "Golden Gate Bridge fog",
    "Neo and Morpheus",
    "vampire film 1922",
    "Supreme Court of India",
    "Frodo and the One Ring",
    "cubism",
    "iPhone release",
]
MIX = (("text", 0.4), ("image", 0.3), ("combined", 0.3))
LOOPBACK = "127.0.0.1"
JSON = "application/json"


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    timeouts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds * 1000)

    def timeout(self) -> None:
        with self.lock:
            self.timeouts += 1

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, its threads and its child processes (the
    workers of `serve --workers`), from Linux /proc; None elsewhere."""
    try:
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except OSError:
        return None
    if pid not in stats:
        return None
    tree, ticks = {pid}, 0
    grew = True
    while grew:
        grew = False
        for child, (parent, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    ticks = sum(stats[p][1] for p in tree)
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_idle(pid: int, limit_s: float = 300.0) -> None:
    """Until the server (all its processes) uses under a fifth of a core for a second: every
    worker has loaded and warmed up."""
    deadline = time.monotonic() + limit_s
    before = _cpu_seconds(pid)
    while before is not None and time.monotonic() < deadline:
        time.sleep(1.0)
        now = _cpu_seconds(pid)
        if now is None or now - before < 0.2:
            return
        before = now


def _spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _per_request(seconds: float | None, requests: int) -> float | None:
    if seconds is None or not requests:
        return None
    return round(seconds * 1000 / requests, 2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _query_images(limit: int = 8) -> list[str]:
    from PIL import Image

    folder = SHARED / "data" / "query_images" / "images"
    out = []
    for path in sorted(folder.iterdir())[:limit]:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((512, 512))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=90)
        out.append(base64.b64encode(buf.getvalue()).decode())
    return out


def _bodies(k: int) -> dict[str, list[bytes]]:
    images = _query_images()
    return {
        "text": [json.dumps({"text": t, "k": k}).encode() for t in TEXTS],
        "image": [json.dumps({"image": i, "k": k}).encode() for i in images],
        "combined": [
            json.dumps({"text": t, "image": images[n % len(images)], "k": k}).encode()
            for n, t in enumerate(TEXTS)
        ],
    }


def _mmretrieve() -> str:
    found = Path(sys.executable).with_name("mmretrieve")
    return str(found) if found.exists() else "mmretrieve"


def _clip_model(size: str) -> str:
    from tools.random_models import build_clip_model

    out = Path(tempfile.gettempdir()) / f"mmretrieve-bench-clip-{size}-random"
    if not (out / "config.json").is_file():
        vocab = SHARED / "models" / "clip-vit-b-32-tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
        build_clip_model(out, bpe_vocab=vocab, tiny=size == "tiny", seed=0)
    return str(out)


def ensure_index(args: argparse.Namespace) -> None:
    if (args.index / "manifest.json").exists():
        return
    command = [
        _mmretrieve(), "index", str(args.wiki), "--index", str(args.index),
        "--text-model", args.text_model,
        "--image-model", args.image_model or _clip_model(args.clip_size), "--no-progress",
    ]  # fmt: skip
    print("building the index:", " ".join(command), file=sys.stderr)
    subprocess.run(command, check=True)


def client(port: int, bodies: dict[str, list[bytes]], until: float, timeout: float,
           tally: Tally, seed: int) -> None:  # fmt: skip
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [w for _, w in MIX]
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        body = rng.choice(bodies[kind])
        start = time.perf_counter()
        try:
            conn.request("POST", "/search", body, headers)
            response = conn.getresponse()
            data = response.read()
        except TimeoutError:
            tally.timeout()
            conn.close()
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
            continue
        except (OSError, http.client.HTTPException) as exc:
            tally.error(f"{kind}: {type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
            continue
        if response.status != 200:
            tally.error(f"{kind}: HTTP {response.status}: {data[:200]!r}")
            continue
        tally.ok(kind, time.perf_counter() - start)
    conn.close()


def run_clients(
    port: int, bodies: dict[str, list[bytes]], clients: int, seconds: float, timeout: float,
    tally: Tally,
) -> float:  # fmt: skip
    """``clients`` clients for ``seconds``; returns the seconds they actually ran."""
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(port, bodies, until, timeout, tally, n))
        for n in range(clients)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (<= 200)")
    parser.add_argument("--seconds", type=float, default=60, help="duration (<= 600)")
    parser.add_argument("--timeout", type=float, default=60, help="client timeout per request, s")
    parser.add_argument("-k", type=int, default=5, help="k of each search")
    parser.add_argument("--index", type=Path,
                        default=Path(tempfile.gettempdir()) / "mmr-load-idx")  # fmt: skip
    parser.add_argument("--wiki", type=Path, default=SHARED / "data" / "wiki_tutorial")
    parser.add_argument("--text-model", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--image-model", default=None, help="CLIP folder (default: random)")
    parser.add_argument("--clip-size", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--workers", type=int, default=1, help="mmretrieve serve --workers")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 200 and 0 < args.seconds <= 600):
        parser.error("--clients must be 1..200 and --seconds at most 600")

    ensure_index(args)
    bodies = _bodies(args.k)
    port = _free_port()
    server = subprocess.Popen(
        [_mmretrieve(), "serve", "--index", str(args.index), "--host", LOOPBACK,
         "--port", str(port), "--log-level", "warning", "--workers", str(args.workers)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("mmretrieve serve did not start")
            try:
                with socket.create_connection((LOOPBACK, port), timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        _wait_idle(server.pid)
        # The first query of each kind after start (the server warmed up before listening),
        # then the same query again: a first query must not be much slower than a warm one.
        first: dict[str, float] = {}
        again: dict[str, float] = {}
        probe = http.client.HTTPConnection(LOOPBACK, port, timeout=120)
        for kind in ("text", "image", "combined"):
            for store in (first, again, again, again):
                t0 = time.perf_counter()
                probe.request("POST", "/search", bodies[kind][0], {"Content-Type": JSON})
                assert probe.getresponse().read()
                took = (time.perf_counter() - t0) * 1000
                if store is first:
                    first[kind] = took
                else:
                    again[kind] = min(again.get(kind, took), took)
        probe.close()
        # One client first, then all of them, against the same server: concurrency_gain is the
        # ratio of the two throughputs.
        single = Tally()
        cpu0 = _cpu_seconds(server.pid), time.process_time()
        single_s = run_clients(port, bodies, 1, min(args.seconds, 20.0), args.timeout, single)
        cpu1 = _cpu_seconds(server.pid), time.process_time()
        load_before = os.getloadavg()
        tally = Tally()
        elapsed = run_clients(port, bodies, args.clients, args.seconds, args.timeout, tally)
        cpu2 = _cpu_seconds(server.pid), time.process_time()
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(30)

    single_n = sum(len(v) for v in single.latencies.values())
    every = [ms for values in tally.latencies.values() for ms in values]
    figures = {
        "clients": args.clients,
        "server_workers": args.workers,
        "seconds": round(elapsed, 1),
        "requests": len(every),
        "errors": len(tally.errors),
        "timeouts": tally.timeouts,
        "throughput_rps": round(len(every) / elapsed, 2),
        "one_client_rps": round(single_n / single_s, 2),
        "concurrency_gain": round((len(every) / elapsed) / max(single_n / single_s, 1e-9), 2),
        "first_query_ms": {k: round(v, 1) for k, v in first.items()},
        "warm_query_ms": {k: round(v, 1) for k, v in again.items()},
        "first_vs_warm": {k: round(first[k] / again[k], 2) for k in first},
        "p50_ms": round(_percentile(every, 0.5), 1) if every else None,
        "p90_ms": round(_percentile(every, 0.9), 1) if every else None,
        "p99_ms": round(_percentile(every, 0.99), 1) if every else None,
        "max_ms": round(max(every), 1) if every else None,
        "by_kind": {
            kind: {
                "requests": len(v),
                "p50_ms": round(_percentile(v, 0.5), 1),
                "p99_ms": round(_percentile(v, 0.99), 1),
                "mean_ms": round(statistics.fmean(v), 1),
            }
            for kind, v in sorted(tally.latencies.items())
        },
        # CPU time per answered request (all threads): the server's, and the load generator's
        # own. cpu_count / server CPU per request bounds the throughput the server can reach.
        "server_cpu_ms_per_request": {
            "one_client": _per_request(_spent(cpu0[0], cpu1[0]), single_n),
            "clients": _per_request(_spent(cpu1[0], cpu2[0]), len(every)),
        },
        "client_cpu_ms_per_request": {
            "one_client": _per_request(cpu1[1] - cpu0[1], single_n),
            "clients": _per_request(cpu2[1] - cpu1[1], len(every)),
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpu_count": os.cpu_count(),
        "clip": args.image_model or f"random {args.clip_size}",
        "first_errors": (single.errors + tally.errors)[:5],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"{args.clients} clients x {figures['seconds']} s on loopback: "
            f"{figures['requests']} requests, {figures['errors']} errors, "
            f"{figures['timeouts']} timeouts; {figures['throughput_rps']} req/s; "
            f"p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']} ms, p99 {figures['p99_ms']} ms"
        )
        print(
            f"one client: {figures['one_client_rps']} req/s; concurrency_gain "
            f"{figures['concurrency_gain']}; first query / warm: {figures['first_vs_warm']}"
        )
        for kind, row in figures["by_kind"].items():
            print(f"  {kind:8s} {row}")
        print(f"load average before {figures['load_average_before']}, "
              f"after {figures['load_average_after']} ({figures['cpu_count']} CPUs)")  # fmt: skip
    failed = tally.errors or tally.timeouts or single.errors or single.timeouts
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
