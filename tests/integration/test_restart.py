"""Indexes survive restarts and moves (issue 15), with the real command line in subprocesses and
FAKE encoders (tests/helpers/index_with_fakes.py replaces only model loading):

- a real Milvus server (the one `.ci/run` starts with scripts/milvus-server.sh) stopped and
  started between `mmretrieve index` and `mmretrieve search`: the search answers exactly as
  before the restart;
- a Lance index directory moved to another path, then made read-only for real (a read-only bind
  mount; or no write permission, with the process's permission overrides dropped when it runs
  as root): search works from the CLI and the Python API; every write (CLI `index`, `Index.add`,
  `Index.delete`) fails with ReadOnlyIndexError (CLI: exit 1, one `error:` line), and no file of
  the index changes.

(A Milvus Lite file reopened by another process: tests/integration/test_reopen.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from fakes import SAMPLE_ARTICLES

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
LAUNCHER = TESTS / "helpers" / "index_with_fakes.py"
MILVUS_SCRIPT = REPO / "scripts" / "milvus-server.sh"
QUERY = "Who is Bruce Wayne?"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}


def _cli(*args: str, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``mmretrieve ARGS`` (FAKE encoders) in a new process, behind ``prefix`` (a wrapper)."""
    return subprocess.run(
        [*prefix, sys.executable, str(LAUNCHER), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )


def _corpus(root: Path) -> Path:
    for title, text in SAMPLE_ARTICLES.items():
        (root / title).mkdir(parents=True, exist_ok=True)
        (root / title / "article.txt").write_text(text, encoding="utf-8")
    return root


def _search(location: str, prefix: Sequence[str] = ()) -> dict:
    done = _cli("search", QUERY, "--index", location, "-k", "3", "--json", prefix=prefix)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _ranking(answer: dict) -> list[tuple[str, float]]:
    return [(hit["id"], round(hit["score"], 6)) for hit in answer["hits"]]


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The CLI failed cleanly: exit 1 and one ``error:`` line, no traceback."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


# -- a Milvus server restarted ----------------------------------------------------------------
def _milvus_address() -> str:
    """HOST:PORT of the Milvus server scripts/milvus-server.sh runs; skip without one (fail when
    MMRETRIEVE_REQUIRE_MILVUS=1, as in CI)."""
    port = os.environ.get("MILVUS_PORT", "19530")
    address = os.environ.get("MMRETRIEVE_MILVUS_URI", f"127.0.0.1:{port}").split("://", 1)[-1]
    address = address.rstrip("/")
    status = subprocess.run([str(MILVUS_SCRIPT), "status"], capture_output=True, text=True)
    problem = None
    if status.returncode != 0:
        problem = f"scripts/milvus-server.sh status: {status.stdout.strip() or status.stderr}"
    elif address != f"127.0.0.1:{port}":
        problem = f"MMRETRIEVE_MILVUS_URI={address} is not the server scripts/milvus-server.sh runs"
    if problem:
        reason = f"no Milvus server this test can restart ({problem}); run it with `start`"
        if os.environ.get("MMRETRIEVE_REQUIRE_MILVUS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return address


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        return False


def _server(action: str) -> None:
    done = subprocess.run([str(MILVUS_SCRIPT), action], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, f"milvus-server.sh {action}: {done.stdout}{done.stderr}"


@pytest.mark.slow
def test_a_milvus_server_restarted_between_index_and_search(tmp_path: Path) -> None:
    address = _milvus_address()
    name = f"restart_{uuid.uuid4().hex[:8]}"
    uri = f"milvus://{address}/{name}"
    corpus = _corpus(tmp_path / "corpus")
    done = _cli("index", str(corpus), "--index", uri, "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    try:
        before = _search(uri)
        assert before["articles"][0]["article"]["title"] == "Batman"
        _server("stop")
        assert not _answers(address), "the server still answers after stop"
        down = _cli("search", QUERY, "--index", uri, "--json")
        assert down.returncode != 0  # the stop was real: nothing answers the search
        _server("start")
        after = _search(uri)
        assert _ranking(after) == _ranking(before)
        assert [a["article"]["id"] for a in after["articles"]] == [
            a["article"]["id"] for a in before["articles"]
        ]
        # This server brings its collections back loaded; one that does not (or an operator
        # who released them) leaves them released, which a reader must load (issue 15 bug 1).
        assert _release(address, name) >= 4
        assert _ranking(_search(uri)) == _ranking(before)
        info = _cli("info", "--index", uri, "--json")
        assert info.returncode == 0, info.stderr[-3000:]
        assert json.loads(info.stdout)["counts"]["articles"] == len(SAMPLE_ARTICLES)
    finally:
        if not _answers(address):  # leave the server running for the tests after this one
            _server("start")
        _drop(uri)


def _release(address: str, prefix: str) -> int:
    """Release every collection of the index at ``prefix`` (a plain pymilvus client); how many."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=f"http://{address}", timeout=30)
    try:
        names = [n for n in client.list_collections() if n.startswith(f"{prefix}_")]
        for collection in names:
            client.release_collection(collection)
            state = client.get_load_state(collection)["state"].name
            assert state == "NotLoad", (collection, state)
        return len(names)
    finally:
        client.close()


def _drop(uri: str) -> None:
    from mmretrieve.store import open_store

    store = open_store(uri)
    try:
        store.drop()  # type: ignore[attr-defined]
    finally:
        store.close()


# -- a Lance index moved, then read-only ----------------------------------------------------
API_CHECK = """
import json, os
from fakes import FakeClipEncoder, FakeTextEncoder
from mmretrieve import Index
from mmretrieve.errors import ReadOnlyIndexError

out = {}
try:
    with open(os.path.join(PATH, "probe"), "w"):
        out["probe"] = "written"
except OSError as exc:
    out["probe"] = exc.strerror
index = Index.open(
    PATH, create=False, text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
)
found = index.search(text=QUERY, k=3)
out["top"] = found.articles[0].article.title
out["routes"] = dict(found.routes)
out["articles"] = index.stats()["counts"]["articles"]
writes = {
    "add": lambda: index.add(CORPUS),
    "delete": lambda: index.delete(article_ids=["Batman"]),
    "delete_images": lambda: index.delete(image_ids=["x"]),
}
for name, write in writes.items():
    try:
        write()
        out[name] = "no error"
    except ReadOnlyIndexError as exc:
        out[name] = "ReadOnlyIndexError: " + str(exc)
out["after"] = index.stats()["counts"]["articles"]
print(json.dumps(out))
"""


def _read_only_mount(path: Path) -> list[str]:
    """A wrapper that runs a command in a private mount namespace where ``path`` is a read-only
    bind mount: nothing, root included, can write there. Unprivileged: a user namespace."""
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return ["unshare", "--mount", "--propagation", "private", *user, "sh", "-c", script, "sh"] + [
        str(path)
    ]


def _no_write_permission(path: Path) -> list[str]:
    """Remove every write bit under ``path``; as root, also drop the capabilities that let root
    write anyway (what chmod alone cannot stop), for the wrapped command only."""
    for folder, _dirs, files in os.walk(path):
        for name in files:
            target = os.path.join(folder, name)
            os.chmod(target, stat.S_IMODE(os.stat(target).st_mode) & ~0o222)
        os.chmod(folder, stat.S_IMODE(os.stat(folder).st_mode) & ~0o222)
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def _restore_write(path: Path) -> None:
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("how", ["read-only mount", "no write permission"])
def test_a_moved_read_only_lance_index_searches_and_refuses_writes(
    tmp_path: Path, how: str
) -> None:
    corpus = _corpus(tmp_path / "corpus")
    built = tmp_path / "built" / "idx"
    done = _cli("index", str(corpus), "--index", str(built), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = _search(str(built))
    moved = tmp_path / "elsewhere" / "moved-idx"
    moved.parent.mkdir()
    os.rename(built, moved)
    shutil.rmtree(tmp_path / "built")
    files = _tree(moved)

    prefix = _read_only_mount(moved) if how == "read-only mount" else _no_write_permission(moved)
    try:
        # search: CLI
        assert _ranking(_search(str(moved), prefix)) == _ranking(expected)
        # write: CLI (an unchanged corpus still writes the manifest)
        for args in (["index", str(corpus)], ["index", str(corpus), "--prune"]):
            error = _one_error_line(_cli(*args, "--index", str(moved), prefix=prefix))
            assert f"the index at {moved} is read-only" in error, error
        # search and writes: Python API
        values = {"PATH": str(moved), "CORPUS": str(corpus), "QUERY": QUERY}
        code = "".join(f"{k} = {v!r}\n" for k, v in values.items()) + textwrap.dedent(API_CHECK)
        run = subprocess.run(
            [*prefix, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env=_env(),
        )
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        if how == "no write permission":
            _restore_write(moved)
    assert out["probe"] in ("Read-only file system", "Permission denied"), out  # really read-only
    assert out["top"] == "Batman" and out["articles"] == out["after"] == len(SAMPLE_ARTICLES)
    assert out["routes"]["text->passage:bm25"] == "ok", out["routes"]  # BM25 works read-only
    for write in ("add", "delete", "delete_images"):
        assert out[write].startswith("ReadOnlyIndexError: the index at"), out
    assert _tree(moved) == files  # nothing written
    # Writable again (moved back to normal permissions): the same index takes writes.
    done = _cli("index", str(corpus), "--index", str(moved), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _ranking(_search(str(moved))) == _ranking(expected)
