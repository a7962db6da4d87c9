from __future__ import annotations

import pytest

from mmretrieve.retrieval.grouping import article_score, group_by_article
from mmretrieve.types import Article, Hit


def _hit(kind, id_, article, score):
    return Hit(kind, id_, article, score, {})


def test_article_score_uses_best_items_with_decay():
    assert article_score([0.1, 0.4, 0.2, 0.3]) == pytest.approx(0.4 + 0.5 * 0.3 + 0.25 * 0.2)
    assert article_score([]) == 0


def test_group_orders_and_caps():
    hits = [
        _hit("passage", "a#0", "A", 0.9),
        _hit("image", "i1", "B", 0.8),
        _hit("passage", "b#0", "B", 0.7),
        _hit("image", "loose", None, 0.6),
        _hit("passage", "a#1", "A", 0.1),
        _hit("passage", "c#0", "C", 0.05),
    ]
    arts = {x: Article(x, f"title {x}") for x in "ABC"}
    groups = group_by_article(hits, arts, k=2, passages_per_article=1)
    assert [g.article.id for g in groups] == ["B", "A"]  # 0.8+0.35 > 0.9+0.05
    assert [h.id for h in groups[0].images] == ["i1"]
    assert [h.id for h in groups[1].passages] == ["a#0"]


def test_group_skips_unknown_articles():
    groups = group_by_article([_hit("passage", "x", "X", 1.0)], {}, k=5)
    assert groups == []
