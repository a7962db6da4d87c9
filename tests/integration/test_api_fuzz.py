"""Property-based fuzzing of the HTTP API against its own OpenAPI schema (Schemathesis), with FAKE
deterministic encoders (tests/fakes.py) over a small real LanceDB index in a temp dir.

Schemathesis reads ``/openapi.json`` from the real app (``create_app``, in process through its
ASGI transport: the same middleware, parsing and error handlers as under uvicorn), generates
requests for every operation, valid ones and ones that break the schema, and checks each answer:
never a 5xx, a status the schema documents, the declared content type, and a body that matches
the declared schema. Derandomized: the same requests on every run.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("fastapi", reason="the server extra is not installed")
pytest.importorskip("multipart", reason="python-multipart (server extra) is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (dev extra) not installed")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from fakes import FakeClipEncoder, FakeTextEncoder  # noqa: E402
from mmretrieve import Index  # noqa: E402
from mmretrieve.interfaces.http import ServerSettings, create_app  # noqa: E402


def _no_constant(name: str) -> None:
    raise AssertionError(f"the answer holds {name}, which is not JSON (most clients refuse it)")


@schemathesis.check
def strict_json(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    """A JSON answer is standard JSON: no NaN or Infinity (Python writes them by default)."""
    kind = " ".join(response.headers.get("content-type", []))
    if "json" in kind:
        json.loads(response.content, parse_constant=_no_constant)


CHECKS = [
    not_a_server_error,
    strict_json,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# A request that breaks the schema must be refused (4xx). Not asked of multipart forms: every form
# value is text on the wire, so a "wrong type" there (an object as article_id) arrives as a valid
# string.
REJECTS_INVALID = [negative_data_rejection]
EXAMPLES = 200  # per operation and generation phase; the whole run takes well under a minute

ARTICLES = {
    "Batman": "Batman is a superhero. Bruce Wayne is the secret identity of Batman.",
    "Tomato": "The tomato is a red fruit. Tomato soup is a common dish.",
}


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _build_app():  # type: ignore[no-untyped-def]
    """The real app over a two-article index (FAKE encoders) in a temporary directory.

    Built when the module is imported: Schemathesis generates one test per operation from the
    app's schema at collection (its fixture-based loader does not run under pytest 9.2)."""
    base = Path(_TMP.name)
    corpus = base / "corpus"
    for n, (title, text) in enumerate(ARTICLES.items()):
        folder = corpus / title
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(text, encoding="utf-8")
        (folder / "meta.json").write_text(json.dumps({"id": f"wiki:en:{title}", "title": title}))
        (folder / "photo.png").write_bytes(_png(n))
    index = Index.open(
        base / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    assert index.add(corpus).skipped == []
    return create_app(
        index,
        ServerSettings(
            max_upload_bytes=50_000,
            max_pixels=250_000,
            thumbnail_cache_dir=str(base / "thumbs"),
            request_timeout=10.0,
        ),
    )


_TMP = tempfile.TemporaryDirectory(prefix="mmretrieve-fuzz-")
APP = _build_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_with_fake_encoders(case) -> None:  # type: ignore[no-untyped-def]
    form = (case.media_type or "").startswith("multipart/")
    case.call_and_validate(checks=CHECKS if form else CHECKS + REJECTS_INVALID)


def _ids() -> tuple[str, str]:
    index = APP.state.index
    found = index.search(text="Batman", k=1)
    return found.articles[0].article.id, found.articles[0].images[0].id


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/articles/{article_id}", "article_id"),
        ("/images/{image_id}", "image_id"),
        ("/images/{image_id}/thumbnail", "image_id"),
    ],
)
def test_item_answers_match_the_schema_with_fake_encoders(path: str, parameter: str) -> None:
    """Random ids find nothing (404), so the fuzzing never sees these 200 answers: check them
    with real ids, against the same schema and checks."""
    article_id, image_id = _ids()
    value = article_id if parameter == "article_id" else image_id
    case = schema[path]["GET"].Case(path_parameters={parameter: value})
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "method", ["calibrated", "rrf", "minmax", "zscore", "dbsf", "zscore-family"]
)
def test_huge_weights_are_refused_not_answered_with_infinity(method: str) -> None:
    """Found by probing the fuzzed schema's bounds: a finite but huge weight (1e308) made fused
    scores overflow, answered 200 with ``Infinity`` or ``NaN`` in the body. Now 422."""
    case = schema["/search"]["POST"].Case(
        body={"text": "Batman", "method": method, "weights": {"text->passage": 1e308}},
        media_type="application/json",
    )
    response = case.call()
    assert response.status_code == 422, response.text
    assert "must be from 0 to 1e+06" in response.json()["detail"]
    largest = {"text": "Batman", "method": method, "weights": {"text->passage": 1e6}}
    answer = schema["/search"]["POST"].Case(body=largest, media_type="application/json")
    assert answer.call_and_validate(checks=CHECKS).status_code == 200


@pytest.mark.parametrize(
    "fields",
    [
        {"method": ""},
        {"k": "5"},
        {"min_score": "0.5"},
        {"weights": "text->passage=1"},
        {"filters": []},
    ],
    ids=[
        "empty-method",
        "k-as-text",
        "min_score-as-text",
        "weights-as-text",
        "filters-list",
    ],
)
def test_json_values_of_the_wrong_type_are_refused(fields: dict) -> None:
    """Found by the fuzzing (negative_data_rejection): a JSON body took the text forms a
    multipart form needs ("" for the default method, "5" for k, ...) and answered 200 to
    requests its schema calls invalid. Now 422, as documented."""
    case = schema["/search"]["POST"].Case(
        body={"text": "Batman", **fields}, media_type="application/json"
    )
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code == 422, response.text
