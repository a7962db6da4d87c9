"""The ``--ray`` options of ``mmretrieve index`` (wired in by interfaces/cli.py). No Ray import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def ray_options(func: F) -> F:
    """Add ``--ray auto|ADDRESS``, ``--ray-workers N`` and ``--ray-gpus G`` to a command; they
    arrive as ``ray_address``, ``ray_workers`` and ``ray_gpus``."""
    func = click.option(
        "--ray-gpus",
        "ray_gpus",
        type=click.FloatRange(0, 8),
        default=0.0,
        show_default=True,
        help="GPUs per Ray worker (e.g. 1, or 0.5 to share one GPU between two workers).",
    )(func)
    func = click.option(
        "--ray-workers",
        "ray_workers",
        type=click.IntRange(1, 10_000),
        default=None,
        help="Ray workers (one model copy each). Default: one per free CPU in the cluster.",
    )(func)
    return click.option(
        "--ray",
        "ray_address",
        default=None,
        metavar="auto|ADDRESS",
        help="Encode on Ray: 'auto' starts Ray on this machine (or joins RAY_ADDRESS); an "
        "address (ray://head:10001 or HOST:PORT) joins that cluster. Needs "
        "pip install 'mmretrieve[ray]'; cluster nodes need mmretrieve and the models.",
    )(func)
