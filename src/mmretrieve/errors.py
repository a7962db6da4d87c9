"""Exceptions users see. The CLI maps them to exit codes, the HTTP API to statuses."""

from __future__ import annotations

from typing import Any


class MMRetrieveError(Exception):
    """Base class for every error mmretrieve raises on purpose."""

    exit_code = 1


class UsageError(MMRetrieveError, ValueError):
    """The caller asked for something that cannot work (bad option combination, empty query)."""

    exit_code = 2


class ModelNotFoundError(MMRetrieveError):
    """A model is neither a local folder nor in the Hugging Face cache."""


class ModelLoadError(MMRetrieveError):
    """A model folder exists but cannot be loaded."""


class IndexMismatchError(MMRetrieveError):
    """An index was opened with models (or settings) other than those it was built with."""


class IndexNotFoundError(MMRetrieveError):
    """No index exists at the given location."""


class ReadOnlyIndexError(MMRetrieveError):
    """The index can be searched but not written: its directory is on a read-only filesystem, or
    this user may not write to it."""


class BadInputError(MMRetrieveError):
    """One input item (file, image, text) cannot be used; indexing reports it and goes on."""


class MissingExtraError(MMRetrieveError, ImportError):
    """An optional dependency is not installed; the message names the pip command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed. Install it with: pip install 'mmretrieve[{extra}]'"
        )
        self.package = package
        self.extra = extra


def require(module: str, extra: str, package: str | None = None) -> Any:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError(package or module.split(".")[0], extra) from exc
