"""Scale-out helpers (docs/SCALING.md): ingestion on a Ray cluster. Importing this package
imports no Ray; ``pip install 'mmretrieve[ray]'`` provides it."""

from __future__ import annotations

__all__ = ["add_with_ray", "ray_index"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from . import ray_ingest

        return getattr(ray_ingest, name)
    raise AttributeError(name)
