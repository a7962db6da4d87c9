"""The ``mmretrieve`` command. Thin: every command calls the Python API (docs/ARCHITECTURE.md).

Exit codes: 0 ok, 1 runtime error, 2 usage error; ``index`` exits 3 when it finished but skipped
some items (each is listed with its reason).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from ..distributed.options import ray_options
from ..retrieval.fusion import METHODS
from ..retrieval.searcher import DEFAULT_METHOD
from .cli_common import (
    EXIT_SKIPPED,
    chunk_tokens_option,
    device_option,
    emit_json,
    friendly,
    image_model_option,
    index_option,
    json_option,
    open_index,
    precision_option,
    progress_option,
    runtime_option,
    text_model_option,
    warn,
    weights_option,
)
from .cli_eval import eval_cmd
from .cli_models import models_group
from .cli_serve import serve_cmd
from .cli_wiki import wiki


def run(argv: list[str] | None = None) -> None:
    """The ``mmretrieve`` program: ``main`` in click's standalone mode. Once the command has
    finished and reported, a Ctrl-C while the interpreter shuts down (joining LanceDB's and the
    pools' threads) is ignored: it could only turn a finished run's exit status into a silent
    death by SIGINT."""
    try:
        main.main(args=argv, prog_name="mmretrieve")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="mmretrieve")
def main(debug: bool) -> None:
    """Search Wikipedia-style articles and their images by text, image, or both.

    \b
    Example:
      mmretrieve index ./wiki --index ./idx
      mmretrieve search "Bat man" --image batman.jpg --index ./idx
    """


@main.command("index")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_option
@text_model_option()
@image_model_option()
@device_option
@runtime_option
@precision_option
@click.option("--prune", is_flag=True, help="Remove indexed items whose source is gone.")
@chunk_tokens_option
@click.option(
    "--chunk-overlap",
    type=click.IntRange(0, 4096),
    default=None,
    help="Tokens shared by consecutive passages for a new index (default 32).",
)
@click.option(
    "--clip-text-view/--no-clip-text-view",
    default=None,
    help="For a new index: also embed every passage with CLIP's text tower, so a photo finds "
    "passages that read like it (the image->passage:clip_text route). Off by default: it costs "
    "a third of the indexing time and moved no query family on mixed_dev (docs/QUALITY.md).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Write every skipped item (path and reason) to this file as JSON lines.",
)
@progress_option
@ray_options
@json_option
@friendly
def index_cmd(
    sources: tuple[Path, ...],
    index_path: str,
    text_model: str | None,
    image_model: str | None,
    device: str | None,
    runtime: str | None,
    precision: str | None,
    prune: bool,
    chunk_tokens: int | None,
    chunk_overlap: int | None,
    clip_text_view: bool | None,
    report_path: Path | None,
    progress: bool,
    ray_address: str | None,
    ray_workers: int | None,
    ray_gpus: float,
    as_json: bool,
) -> None:
    """Index articles and images from folders or JSONL files.

    SOURCES are a folder of <Title>.txt files and images, a folder with one subfolder per
    article (article.txt, meta.json, images, images.jsonl), or a JSONL corpus (corpus.jsonl and
    images.jsonl). Unchanged items are skipped on a re-run. Exit code 3: finished, but some items
    were skipped (listed with reasons).

    \b
    Example:
      mmretrieve index ./wiki --index ./idx --text-model BAAI/bge-small-en-v1.5
      mmretrieve index ./wiki --store milvus://127.0.0.1:19530/wiki --ray auto
    """
    index = open_index(
        index_path,
        text_model,
        image_model,
        device,
        create=True,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        clip_text_view=clip_text_view,
        runtime=runtime,
        precision=precision,
    )
    with index:
        warn(index)
        if ray_address:
            from ..distributed.ray_ingest import add_with_ray

            report = add_with_ray(
                index,
                list(sources),
                address=ray_address,
                workers=ray_workers,
                gpus_per_worker=ray_gpus,
                prune=prune,
                progress=progress,
            )
        else:
            report = index.add(list(sources), prune=prune, progress=progress)
        if report_path is not None:
            with report_path.open("w", encoding="utf-8") as fh:
                for item in report.skipped:
                    fh.write(
                        json.dumps(
                            {"path": item.path, "reason": item.reason, "kind": item.kind},
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
        if as_json:
            emit_json({"report": report.as_dict(), "stats": index.stats()})
        else:
            _print_report(report, index.stats())
    if report.skipped:
        sys.exit(EXIT_SKIPPED)


def _print_report(report: Any, stats: dict[str, Any]) -> None:
    r = report
    click.echo(
        f"Articles: {r.articles_added} added, {r.articles_updated} updated, "
        f"{r.articles_unchanged} unchanged ({r.passages_encoded} passages encoded). "
        f"Images: {r.images_added} added, {r.images_updated} updated, "
        f"{r.images_unchanged} unchanged. {r.seconds:.1f} s."
    )
    if r.articles_pruned or r.images_pruned:
        click.echo(f"Pruned {r.articles_pruned} articles and {r.images_pruned} images.")
    c = stats["counts"]
    click.echo(
        f"Index now holds {c['articles']} articles, {c['passages']} passages, {c['images']} images."
    )
    if r.skipped:
        click.echo(f"Skipped {len(r.skipped)} items:", err=True)
        for item in r.skipped[:50]:
            click.echo(f"  {item.path}: {item.reason}", err=True)
        if len(r.skipped) > 50:
            click.echo(f"  ... and {len(r.skipped) - 50} more (use --report FILE)", err=True)


@main.command("search")
@click.argument("text", required=False)
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An image file to search with (alone or with TEXT).",
)
@index_option
@click.option(
    "-k",
    "k",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="How many articles to return.",
)
@weights_option()
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default=None,
    help=f"Fusion method (default {DEFAULT_METHOD}; see docs/QUALITY.md).",
)
@click.option(
    "--article",
    "article_ids",
    multiple=True,
    help="Only search within this article id (repeatable).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only items whose field has this value (repeatable; the same KEY again: either "
    "value; KEY!=VALUE: not it; VALUE*: starts with). Fields: title, url, license, source "
    "and any meta.json / JSONL field; an image's license is its own.",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Keep only items and articles whose confidence reaches this (0-1; 0.5 = a "
    "match as strong as chance gives for 1 unrelated query in 20). Nothing that "
    "relevant: no results.",
)
@click.option(
    "--why", is_flag=True, help="Show what each route added to every article's and item's score."
)
@click.option(
    "--sections",
    "by_section",
    is_flag=True,
    help="Show each article by section: its best sections, each with its passages and images "
    "(--json always has them).",
)
@device_option
@runtime_option
@precision_option
@json_option
@friendly
def search_cmd(
    text: str | None,
    image: Path | None,
    index_path: str,
    k: int,
    weights: tuple[str, ...],
    method: str | None,
    article_ids: tuple[str, ...],
    filters: tuple[str, ...],
    min_score: float | None,
    why: bool,
    by_section: bool,
    device: str | None,
    runtime: str | None,
    precision: str | None,
    as_json: bool,
) -> None:
    """Search an index with text, an image, or both.

    Each article shows its score, its confidence (the calibrated chance that a route matched
    it better than chance would) and, with --why, what each route added to the score.

    \b
    Example:
      mmretrieve search "Who is Bruce Wayne?" --index ./idx
      mmretrieve search "Bat man" --image batman.jpg --index ./idx --json
      mmretrieve search --image batman.jpg --index ./idx -k 5 --why --sections
      mmretrieve search "quantum chromodynamics" --index ./idx --min-score 0.5
      mmretrieve search "bridge" --index ./idx --filter license="CC BY-SA 4.0" \\
          --filter lang!=de --filter url=https://en.wikipedia.org/*
    """
    from ..retrieval.weights import parse_weights
    from .render import result_dict, result_text

    if not (text and text.strip()) and image is None:
        raise click.UsageError("give a TEXT query, an --image, or both")
    if text is not None:  # bytes the terminal could not decode arrive as lone surrogates
        from ..types import valid_unicode

        text = valid_unicode(text)
    index = open_index(index_path, None, None, device, runtime=runtime, precision=precision)
    with index:
        result = index.search(
            text=text,
            image=image,
            k=k,
            weights=parse_weights(weights) or None,
            method=method,
            article_ids=list(article_ids) or None,
            min_score=min_score,
            filters=list(filters) or None,
        )
        warn(index)
    if as_json:
        query = {
            "text": text,
            "image": str(image) if image else None,
            "k": k,
            "min_score": min_score,
            "filters": list(filters),
        }
        emit_json(result_dict(result, query))
    elif min_score is not None and not result.articles and not result.hits:
        click.echo(f"Nothing relevant: no result reached --min-score {min_score:g}.")
    else:
        click.echo(result_text(result, why=why, sections=by_section))


@main.command("info")
@index_option
@json_option
@friendly
def info_cmd(index_path: str, as_json: bool) -> None:
    """Show what an index holds and how it was built.

    \b
    Example:
      mmretrieve info --index ./idx --json
    """
    index = open_index(index_path, None, None)
    with index:
        stats = index.stats()
    if as_json:
        emit_json(stats)
        return
    c = stats["counts"]
    click.echo(f"Index {stats['store']}")
    click.echo(f"  {c['articles']} articles, {c['passages']} passages, {c['images']} images")
    for role, model in stats["models"].items():
        if model:
            flag = "  (RANDOM weights)" if model.get("random") else ""
            click.echo(
                f"  {role} model: {model['name']} (dim {model['dim']}, "
                f"revision {model['revision']}){flag}"
            )
        else:
            click.echo(f"  {role} model: none")
    ch = stats["chunking"]
    click.echo(f"  passages: {ch['max_tokens']} tokens, overlap {ch['overlap']}")
    click.echo(f"  built {stats['created_at']}, updated {stats['updated_at']}")


for command in (wiki, eval_cmd, serve_cmd, models_group):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
