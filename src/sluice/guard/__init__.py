"""Guards on data: PII masking at ingress and encryption of payloads at rest.

The public surface is the names below; the modules behind them may change.
"""

from sluice.guard.pii import DEFAULT_TYPES, Entity, MaskResult, MaskSession, PiiMasker
from sluice.guard.recognizers import PiiType, Recognizer

__all__ = [
    "DEFAULT_TYPES",
    "Entity",
    "MaskResult",
    "MaskSession",
    "PiiMasker",
    "PiiType",
    "Recognizer",
]
