"""What every ``mmretrieve`` command module shares: error handling (:func:`friendly`), the
options more than one command takes (each declared here once), opening an index, and the
warnings the core gives. Command modules import this one and never each other, so the CLI has
no import circle (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..config import ENV_DEVICE, ENV_IMAGE_MODEL, ENV_INDEX, ENV_TEXT_MODEL, settings_from_env
from ..errors import MMRetrieveError

if TYPE_CHECKING:
    from ..api import Index

F = TypeVar("F", bound=Callable[..., Any])
EXIT_SKIPPED = 3
DEFAULT_INDEX = "mmretrieve-index"
RUNTIMES = ["auto", "torch", "onnx", "openvino"]
PRECISIONS = ["auto", "fp32", "bf16", "fp16", "int8"]


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def friendly(func: F) -> F:
    """Turn mmretrieve errors into a one-line message and an exit code (traceback with --debug)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MMRetrieveError as exc:
            if click.get_current_context().find_root().params.get("debug"):
                raise
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; finished work is kept and the same command resumes", 130)

    return wrapper  # type: ignore[return-value]


def warn(index: Index) -> None:
    """Say on stderr what the core says a user of this index's results must know."""
    for message in index.warnings():
        click.echo(f"warning: {message}.", err=True)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def open_index(
    index_path: str,
    text_model: str | None,
    image_model: str | None,
    device: str | None = None,
    create: bool = False,
    **settings: Any,
) -> Index:
    from ..api import Index

    base = settings_from_env(device=device, **settings)
    return Index.open(
        index_path, text_model=text_model, image_model=image_model, create=create, settings=base
    )


index_option = click.option(
    "--index",
    "--store",
    "index_path",
    envvar=ENV_INDEX,
    default=DEFAULT_INDEX,
    show_default=True,
    help=f"Index directory or store URI: PATH, lance://PATH, milvus://HOST:PORT/NAME or "
    f"milvus-lite://FILE (env {ENV_INDEX}).",
)

TEXT_MODEL_DEFAULT = "Default: the index's own, or BAAI/bge-small-en-v1.5 for a new index."
IMAGE_MODEL_DEFAULT = "Default: the index's own, or openai/clip-vit-base-patch32 for a new index."


def text_model_option(default: str = TEXT_MODEL_DEFAULT) -> Callable[[F], F]:
    """``--text-model``; ``default`` says what a command uses without it."""
    return click.option(
        "--text-model",
        envvar=ENV_TEXT_MODEL,
        default=None,
        help=f"Text model: Hugging Face name or local folder (env {ENV_TEXT_MODEL}). {default}",
    )


def image_model_option(default: str = IMAGE_MODEL_DEFAULT) -> Callable[[F], F]:
    """``--image-model``; ``default`` says what a command uses without it."""
    return click.option(
        "--image-model",
        envvar=ENV_IMAGE_MODEL,
        default=None,
        help=f"CLIP model: name or local folder, or 'none' for text only (env {ENV_IMAGE_MODEL})."
        f" {default}",
    )


device_option = click.option(
    "--device",
    envvar=ENV_DEVICE,
    default=None,
    help=f"torch device for the encoders, e.g. cpu or cuda (env {ENV_DEVICE}).",
)
runtime_option = click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default=None,
    help="Encoder runtime (env MMRETRIEVE_RUNTIME; default auto: picked by measurement, see "
    "docs/BENCHMARKS.md; torch gives reference figures). onnx needs ONNX files: "
    "`mmretrieve models export`.",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=None,
    help="Encoder precision (env MMRETRIEVE_PRECISION; default auto). fp32 is the reference; "
    "bf16 needs a CPU with native bf16, fp16 a CUDA device, int8 the onnx runtime.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
progress_option = click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show progress bars on stderr.",
)
chunk_tokens_option = click.option(
    "--chunk-tokens",
    type=click.IntRange(16, 8192),
    default=None,
    help="Passage size in text-model tokens for a new index (default 256).",
)


def weights_option(extra: str = "") -> Callable[[F], F]:
    """``--weight ROUTE=W`` (repeatable); ``extra`` says what the command does with it."""
    return click.option(
        "--weights",
        "--weight",
        "weights",
        multiple=True,
        metavar="ROUTE=W",
        help="Weight of a route or route family, e.g. text->passage:bm25=0.5 (repeatable)."
        + (f" {extra}" if extra else ""),
    )
