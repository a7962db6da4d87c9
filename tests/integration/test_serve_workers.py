"""`mmretrieve serve --workers 2`, the real command with real (tiny, RANDOM-weight,
real-architecture) models: two worker processes, each warmed before it answers, both answering
searches of every kind with the same results as one process gives."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("uvicorn", reason="the server extra is not installed")
pytestmark = pytest.mark.slow


def _corpus(root: Path) -> Path:
    for n, (title, text) in enumerate(
        [("Bat", "Batman lives in Gotham City."), ("Tomato", "The tomato is a red fruit.")]
    ):
        folder = root / title
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(text)
        pixels = np.random.default_rng(n).integers(0, 255, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "photo.png")
    return root


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.add(int(entry.name))
    return out


def _serve(index: Path, env: dict, *extra: str) -> tuple[subprocess.Popen, int]:
    port = _port()
    command = [sys.executable, "-m", "mmretrieve.interfaces.cli", "serve", "--index", str(index),
               "--port", str(port), "--log-level", "warning", *extra]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "serve did not start"
        with contextlib.suppress(OSError, http.client.HTTPException):
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            probe.request("GET", "/health")
            if probe.getresponse().status == 200:
                return proc, port
        time.sleep(0.5)


def _searches(port: int) -> list:
    buffer = io.BytesIO()
    Image.fromarray(np.full((30, 30, 3), 90, dtype=np.uint8)).save(buffer, "JPEG")
    image = base64.b64encode(buffer.getvalue()).decode()
    out = []
    for body in ({"text": "Gotham", "k": 3}, {"image": image, "k": 3},
                 {"text": "red fruit", "image": image, "k": 3}) * 4:  # fmt: skip
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request(
            "POST", "/search", json.dumps(body), {"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        assert answer.status == 200
        out.append(
            [(h["kind"], h["id"], round(h["score"], 5)) for h in json.loads(answer.read())["hits"]]
        )
    return out


def test_two_workers_answer_as_one_process_does(tmp_path, tiny_text_model_dir, tiny_clip_model_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    models = ["--text-model", str(tiny_text_model_dir), "--image-model", str(tiny_clip_model_dir)]
    subprocess.run(
        [sys.executable, "-m", "mmretrieve.interfaces.cli", "index", str(_corpus(tmp_path / "c")),
         "--index", str(tmp_path / "idx"), *models, "--no-progress"],
        check=True, capture_output=True, env=env, timeout=600,
    )  # fmt: skip
    results = []
    for extra in ((), ("--workers", "2")):
        proc, port = _serve(tmp_path / "idx", env, *extra)
        try:
            if extra:
                workers = _children(proc.pid)  # uvicorn's supervisor: its worker processes
                assert len(workers) >= 2, workers
            results.append(_searches(port))
        finally:
            proc.terminate()
            proc.wait(60)
    assert results[0] == results[1]
