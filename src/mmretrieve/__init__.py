"""mmretrieve: search Wikipedia-style articles and their images by text, image, or both.

Importing this package loads no torch; models load when an index first needs them.
"""

from __future__ import annotations

from .api import Index
from .errors import (
    BadInputError,
    IndexMismatchError,
    IndexNotFoundError,
    MissingExtraError,
    MMRetrieveError,
    ModelLoadError,
    ModelNotFoundError,
    UsageError,
)
from .types import Article, ArticleResult, Hit, Image, Passage, Query, SearchResult, Skipped

__version__ = "0.1.0"

__all__ = [
    "Article",
    "ArticleResult",
    "BadInputError",
    "Hit",
    "Image",
    "Index",
    "IndexMismatchError",
    "IndexNotFoundError",
    "MMRetrieveError",
    "MissingExtraError",
    "ModelLoadError",
    "ModelNotFoundError",
    "Passage",
    "Query",
    "SearchResult",
    "Skipped",
    "UsageError",
]
