"""LanceStore specifics beyond the shared contract."""

from __future__ import annotations

import time

from mmretrieve.store import open_store, table_schemas
from mmretrieve.store.lance import READ_CONSISTENCY_S


def test_a_long_lived_handle_sees_another_writers_commits(tmp_path):
    """A running server must see what a concurrent `mmretrieve index` commits."""
    writer = open_store(tmp_path / "idx")
    writer.ensure_tables(table_schemas(8, None, clip_text_view=False))
    reader = open_store(tmp_path / "idx")
    reader.ensure_tables(table_schemas(8, None, clip_text_view=False))
    assert reader.count("articles") == 0
    row = {
        "id": "x",
        "title": "t",
        "url": None,
        "license": None,
        "source": None,
        "content_hash": "h",
        "n_passages": 1,
    }
    writer.upsert("articles", [row])
    time.sleep(READ_CONSISTENCY_S + 0.2)
    assert reader.count("articles") == 1
    assert reader.get("articles", ["x"])[0]["title"] == "t"
