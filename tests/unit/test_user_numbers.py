"""Every number a user gives is finite and of the right type, and all text that reaches an encoder
is valid Unicode: the Python API (issue 15), on FAKE encoders."""

from __future__ import annotations

import math

import pytest

from mmretrieve.documents.text import valid_unicode
from mmretrieve.errors import UsageError
from mmretrieve.retrieval.weights import parse_weights, resolve_weights
from mmretrieve.types import Query


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "0.5", True, None, 1e308, -1])
def test_weights_must_be_finite_numbers(bad) -> None:
    with pytest.raises(UsageError, match="text->passage:bm25"):
        resolve_weights({"text->passage:bm25": bad})


def test_parsed_weights_refuse_nan() -> None:
    with pytest.raises(UsageError):
        resolve_weights(parse_weights(["text->passage:bm25=nan"]))


def test_huge_weights_are_refused_as_over_http() -> None:
    """1e308 made every fused score Infinity or NaN; the bound is the HTTP schema's."""
    from mmretrieve.interfaces.http_params import MAX_WEIGHT

    assert resolve_weights({"text->passage:bm25": MAX_WEIGHT})["text->passage:bm25"] == MAX_WEIGHT
    with pytest.raises(UsageError, match="from 0 to 1e"):
        resolve_weights(parse_weights(["text->passage:bm25=1e308"]))


def test_lone_surrogates_become_replacement_characters() -> None:
    assert valid_unicode("\ud800 bat \udfff") == "\ufffd bat \ufffd"
    assert valid_unicode("café 🦇") == "café 🦇"
    assert Query(text="\ud800 bat").text == "\ufffd bat"
    "\ufffd bat".encode("utf-8")  # what reaches tokenizers and stores encodes cleanly


def test_search_numbers_are_checked(fake_index) -> None:
    for bad in (2.5, True, "3", math.nan):
        with pytest.raises(UsageError, match="k must be"):
            fake_index.search(text="Batman", k=bad)
    for bad in (math.nan, 1.5, "0.5", True):
        with pytest.raises(UsageError, match="min_score"):
            fake_index.search(text="Batman", min_score=bad)
    assert fake_index.search(text="\ud800 Batman", k=2).articles


@pytest.fixture
def fake_index(tmp_path):
    from fakes import SAMPLE_ARTICLES, FakeClipEncoder, FakeTextEncoder
    from mmretrieve import Index

    corpus = tmp_path / "corpus"
    for title, text in SAMPLE_ARTICLES.items():
        (corpus / title).mkdir(parents=True)
        (corpus / title / "article.txt").write_text(text, encoding="utf-8")
    index = Index.open(
        tmp_path / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    index.add(corpus)
    yield index
    index.close()
