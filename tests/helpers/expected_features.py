"""What each store backend under test must offer, decided here and not by the store itself.

A test that branches on ``store.supports_text_search`` alone cannot fail when a store wrongly
reports no BM25 (every branch would pass on an empty answer). So the tests first assert that the
store reports what its backend kind must have, from facts outside our code:

- LanceDB: BM25 always (its full-text index);
- Milvus Lite: BM25 from 3.0 (the installed ``milvus-lite`` package's version);
- a Milvus server: BM25 from 2.5, the version the server itself reports to a plain pymilvus
  client. The server CI starts (scripts/milvus-server.sh, PyPI ``milvus`` 2.3.5) has none.
"""

from __future__ import annotations

import re
from importlib import metadata

BM25_SINCE_SERVER = (2, 5)
BM25_SINCE_LITE = (3, 0)


def _major_minor(version: str) -> tuple[int, int]:
    found = re.search(r"(\d+)\.(\d+)", version)
    assert found, f"no version number in {version!r}"
    return int(found[1]), int(found[2])


def milvus_server_version(address: str) -> str:
    """The version a Milvus server at HOST:PORT reports (``v2.3.5-lite`` for CI's)."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=f"http://{address}", timeout=10)
    try:
        return str(client.get_server_version())
    finally:
        client.close()


def bm25_expected(kind: str, address: str | None = None) -> bool:
    """Whether a store of ``kind`` ("lance", "milvus-lite", "milvus" at ``address``) must have
    BM25 full-text search."""
    if kind == "lance":
        return True
    if kind == "milvus-lite":
        return _major_minor(metadata.version("milvus-lite")) >= BM25_SINCE_LITE
    if kind == "milvus":
        assert address, "a Milvus server's address is needed"
        return _major_minor(milvus_server_version(address)) >= BM25_SINCE_SERVER
    raise AssertionError(f"unknown store kind {kind!r}")
