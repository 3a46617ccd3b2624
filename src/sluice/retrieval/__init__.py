"""Retrieval: embed resolved tickets once, find the most similar ones for each new ticket.

``Embedder`` is the port (``wordllama_embedder()`` fast, ``minilm_embedder()`` better);
``VectorIndex`` holds items and searches them by exact cosine similarity; ``build_index``,
``save_index`` / ``load_index`` and ``warm_up`` cover the life of an index on disk; the
``retrieve`` workflow step lives in :mod:`sluice.steps.retrieve`. Importing this package loads
no numpy, torch or model weights: that happens on the first embed or index.
"""

from sluice.retrieval.build import build_index, load_templates, resolved_tickets, ticket_id
from sluice.retrieval.config import INDEXES, IndexSettings, open_index, open_indexes, parse_indexes
from sluice.retrieval.embedder import (
    Embedder,
    FeatureEmbedder,
    embedder_for,
    minilm_embedder,
    wordllama_embedder,
)
from sluice.retrieval.errors import (
    EmbedderMismatchError,
    IndexFormatError,
    IndexFullError,
    RetrievalError,
)
from sluice.retrieval.index import IndexItem, Neighbour, VectorIndex
from sluice.retrieval.persist import load_index, read_meta, save_index
from sluice.retrieval.warmup import WarmUpReport, warm_up

__all__ = [
    "INDEXES",
    "Embedder",
    "EmbedderMismatchError",
    "FeatureEmbedder",
    "IndexFormatError",
    "IndexFullError",
    "IndexItem",
    "IndexSettings",
    "Neighbour",
    "RetrievalError",
    "VectorIndex",
    "WarmUpReport",
    "build_index",
    "embedder_for",
    "load_index",
    "load_templates",
    "minilm_embedder",
    "open_index",
    "open_indexes",
    "parse_indexes",
    "read_meta",
    "resolved_tickets",
    "save_index",
    "ticket_id",
    "warm_up",
    "wordllama_embedder",
]
