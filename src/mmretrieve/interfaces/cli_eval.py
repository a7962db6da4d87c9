"""``mmretrieve eval``: score retrieval on a data set, each route alone and fused, side by side.

Thin: loading, running and scoring live in :mod:`mmretrieve.evaluation`. The main CLI registers
:data:`eval_cmd`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from ..retrieval.fusion import METHODS
from .cli_common import (
    chunk_tokens_option,
    device_option,
    friendly,
    image_model_option,
    json_option,
    precision_option,
    progress_option,
    runtime_option,
    text_model_option,
    warn,
    weights_option,
)

ROUTES_HELP = (
    "Routes to score (repeatable or comma-separated): a set (all, text, image, text-passage, "
    "text-image, image-image, image-passage, dense, bm25, lexical), a family such as "
    "text->passage, or a route such as text->passage:dense. Fusions combine the chosen routes. "
    "Default: every route that finds anything."
)


@click.command("eval")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "normalised", "beir", "flickr30k", "coco"]),
    help="Data set format; auto looks at the files (qrels.tsv, qrels/, dataset_*.json).",
)
@click.option(
    "--split",
    default=None,
    help="BEIR qrels split (default test), or Karpathy split for flickr30k/coco (default test; "
    "NAME:N keeps the first N images, e.g. test:1000).",
)
@text_model_option("Default: the index's own, or BAAI/bge-small-en-v1.5.")
@image_model_option(
    "Default: the index's own; for a new index openai/clip-vit-base-patch32 when the data set "
    "has images, else none."
)
@click.option(
    "--index",
    "index_path",
    default=None,
    help="Index to use as it is when it exists (it must hold this data set, same ids); when it "
    "does not exist the data set is indexed there and kept for later runs. Default: a "
    "temporary index, deleted afterwards.",
)
@click.option("--routes", "routes", multiple=True, metavar="NAMES", help=ROUTES_HELP)
@weights_option("Unnamed routes keep the product's default weights; the fusions use them.")
@click.option(
    "--method",
    type=click.Choice(["all", *METHODS]),
    default="all",
    show_default=True,
    help="Fusion method(s) to report next to the single routes.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N queries that have a relevant item (the whole corpus is still indexed).",
)
@click.option(
    "--level",
    type=click.Choice(["auto", "article", "flat"]),
    default="auto",
    show_default=True,
    help="What is judged: article = the grouped articles a search returns (the default when "
    "the qrels header names article_id), flat = the fused items mapped to judged ids.",
)
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=None,
    help="Candidates each route returns per query (default: 100 at the flat level, as "
    "Recall@100 needs; 50 at the article level, as a search with k = 10 fetches).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Queries encoded per model call.",
)
@chunk_tokens_option
@device_option
@runtime_option
@precision_option
@progress_option
@json_option
@friendly
def eval_cmd(
    dataset: Path,
    fmt: str,
    split: str | None,
    text_model: str | None,
    image_model: str | None,
    index_path: str | None,
    routes: tuple[str, ...],
    weights: tuple[str, ...],
    method: str,
    limit: int | None,
    level: str,
    depth: int | None,
    batch_size: int,
    chunk_tokens: int | None,
    device: str | None,
    runtime: str | None,
    precision: str | None,
    progress: bool,
    as_json: bool,
) -> None:
    """Measure retrieval quality on DATASET: each route alone and the fusions, side by side.

    Metrics are nDCG@10, Recall@1/5/10/100 and MRR@10, per query then averaged. When the qrels
    name articles (header: query_id, article_id, relevance) the articles a search returns are
    judged; otherwise passages count as their document (its best passage) and images as
    themselves. Queries with a "family" field are also scored per family. The result the
    product's default settings give is marked (JSON: "default").

    \b
    Example:
      mmretrieve eval ../shared/data/squad_dev --text-model ../shared/models/all-MiniLM-L6-v2
      mmretrieve eval ../shared/data/mixed_dev --json    # per query family, article level
      mmretrieve eval ../shared/data/coco_mini --image-model PATH --routes text-image
      mmretrieve eval path/to/beir/scifact --format beir --json
      mmretrieve eval path/to/flickr30k --format flickr30k --split test
    """
    from ..config import settings_from_env
    from ..evaluation.building import open_eval_index
    from ..evaluation.datasets import load_dataset
    from ..evaluation.report import format_report
    from ..evaluation.runner import EvalOptions, parse_routes, run_eval
    from ..retrieval.weights import parse_weights, resolve_weights

    data = load_dataset(dataset, fmt, split)
    parsed = parse_weights(weights) or None
    resolve_weights(parsed)  # unknown routes fail before any model loads
    options = EvalOptions(
        routes=parse_routes(routes),
        weights=parsed,
        methods=tuple(METHODS) if method == "all" else (method,),
        depth=depth,
        batch_size=batch_size,
        limit=limit,
        level=level,
    )
    settings = settings_from_env(
        device=device, chunk_tokens=chunk_tokens, runtime=runtime, precision=precision
    )
    with tempfile.TemporaryDirectory(prefix="mmretrieve-eval-") as workdir:
        index, index_s = open_eval_index(
            data,
            index_path,
            text_model=text_model,
            image_model=image_model,
            settings=settings,
            workdir=workdir,
            progress=progress and not as_json,
        )
        with index:
            report = run_eval(
                data, index, options, progress=progress and not as_json, index_s=index_s
            )
            warn(index)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(format_report(report))
