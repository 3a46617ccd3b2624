"""Errors of the retrieval package, rooted at :class:`sluice.errors.SluiceError`.

::

    SluiceError
    ├── ConfigError
    │   └── RetrievalError            an index cannot be built, loaded or used
    │       ├── EmbedderMismatchError an index file was built by another embedder
    │       └── IndexFormatError      an index directory is missing, torn or from a newer format
    └── IndexFullError                an add would grow the index past ``max_items``

Mismatch and format errors are configuration problems (rebuild the index with the right
embedder); a full index is a capacity limit reached at run time.
"""

from __future__ import annotations

from sluice.errors import ConfigError, SluiceError


class RetrievalError(ConfigError):
    """An index cannot be built, loaded or used as configured."""


class EmbedderMismatchError(RetrievalError):
    """An index on disk was built by another embedder (name, version or width differ).

    Its vectors live in another space: cosine scores against them would be meaningless, so
    the index is refused rather than silently searched.
    """


class IndexFormatError(RetrievalError):
    """An index directory is missing files, was torn by a crash, or has an unknown format."""


class IndexFullError(SluiceError):
    """Adding the items would grow the index past its ``max_items`` bound."""
