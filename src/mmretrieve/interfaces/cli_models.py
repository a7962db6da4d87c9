"""``mmretrieve models``: download models and export them to ONNX."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_common import friendly


@click.group("models")
def models_group() -> None:
    """Download and inspect models."""


@models_group.command("pull")
@click.argument("names", nargs=-1)
@friendly
def models_pull(names: tuple[str, ...]) -> None:
    """Download models into the Hugging Face cache (needs internet), so later runs work offline.

    With no NAMES, pulls the defaults: BAAI/bge-small-en-v1.5 and openai/clip-vit-base-patch32.

    \b
    Example:
      mmretrieve models pull
      mmretrieve models pull BAAI/bge-base-en-v1.5
    """
    from ..config import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL
    from ..encoders.pull import pull_models

    for path in pull_models(list(names) or [DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL]):
        click.echo(str(path))


@models_group.command("export")
@click.argument("names", nargs=-1)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write (one model only). Default: the export cache, where "
    "--runtime onnx finds it for the same model name.",
)
@click.option(
    "--kind",
    type=click.Choice(["text", "image"]),
    default=None,
    help="Model kind (default: read from config.json; CLIP = image).",
)
@click.option(
    "--int8/--no-int8",
    default=True,
    show_default=True,
    help="Also write int8-quantized graphs (*_int8.onnx).",
)
@friendly
def models_export(
    names: tuple[str, ...], out_dir: Path | None, kind: str | None, int8: bool
) -> None:
    """Export models to ONNX (fp32 and int8) for `--runtime onnx`; needs torch and onnx.

    With no NAMES, exports the defaults. With --out, the folder written is a complete model
    folder (configs, tokenizer, onnx/) that works on a machine with only the [onnx] extra:
    pass it as --text-model / --image-model there.

    \b
    Example:
      mmretrieve models export
      mmretrieve models export BAAI/bge-small-en-v1.5 --out ./bge-small-onnx
    """
    from ..config import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL
    from ..encoders.onnx_export import export_model

    todo = list(names) or [DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL]
    if out_dir is not None and len(todo) != 1:
        raise click.UsageError("--out takes one model; give exactly one NAME")
    for name in todo:
        path = export_model(
            name, out_dir, kind=kind, int8=int8, log=lambda message: click.echo(message, err=True)
        )
        click.echo(str(path))
