"""Parsing metadata filters (retrieval/filters.py) and the articles' meta fields sources give."""

from __future__ import annotations

import json

import pytest

from mmretrieve import UsageError
from mmretrieve.retrieval.filters import Condition, parse_filters
from mmretrieve.sources import open_source
from mmretrieve.store.base import Match


def test_strings_and_mappings_mean_the_same():
    strings = ["license=CC0", "license=CC BY*", "lang!=de", "lang!=fr", "n=1", "tag=a\\*"]
    mapping = {"license": ["CC0", "CC BY*"], "lang!=": ["de", "fr"], "n": 1, "tag": "a\\*"}
    expected = [
        Condition("license", Match(("CC0",), ("CC BY",))),
        Condition("lang", Match(("de", "fr"), negate=True, null=True)),
        Condition("n", Match(("1",))),
        Condition("tag", Match(("a*",))),
    ]
    assert parse_filters(strings) == expected
    assert parse_filters(mapping) == expected
    assert parse_filters({"flag": True, "x!": "1"}) == [
        Condition("flag", Match(("true",))),
        Condition("x", Match(("1",), negate=True, null=True)),
    ]
    assert parse_filters(None) == [] and parse_filters({}) == []
    # A value with '=' in it splits at the first one.
    assert parse_filters(["url=https://x/?a=b"]) == [Condition("url", Match(("https://x/?a=b",)))]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (["license"], "write KEY=VALUE"),
        (["=x"], "filter key ''"),
        ({"bad key": "x"}, "filter key 'bad key'"),
        ({"license": []}, "at least one value"),
        ({"license": {"a": 1}}, "values are strings"),
        ("license=x", "in a list"),
    ],
)
def test_malformed_filters_are_usage_errors(filters, message):
    with pytest.raises(UsageError, match=message):
        parse_filters(filters)


def test_jsonl_fields_become_article_meta(tmp_path):
    lines = [
        {"id": "a", "title": "A", "text": "x", "lang": "en", "year": 2020, "free": True,
         "nested": {"k": 1}, "none": None, "fetched_at": "now", "url": "https://a"},
    ]  # fmt: skip
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (article,) = list(open_source(tmp_path).items())
    assert article.meta == {"free": "true", "lang": "en", "year": "2020"}
    assert article.url == "https://a"
