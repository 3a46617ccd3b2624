"""What a fixture keeps of a real payload: PII pseudonymized, secrets removed, nothing sealed.

:class:`FixtureMasker` walks a decoded JSON payload (or a text that is not JSON) and

- replaces every PII value the guard's recognizers find (:class:`~sluice.guard.PiiMasker`, the
  masker ingress uses) with its deterministic pseudonym (:mod:`sluice.envs.pseudonyms`), in
  values and in object keys alike;
- replaces the value of every field whose name says it holds a secret (``password``,
  ``api_key``, ``authorization``, ``client_secret``, ...) with :data:`REMOVED`, and every secret
  recognized in text (API keys of the usual providers and of Sluice, bearer tokens, JWTs,
  webhook secrets, private keys, passwords in URLs, the app's own configured secrets);
- removes any value that still carries a payload sealed by the at-rest codec (base64 of an
  ``SLE`` envelope): a fixture holds nothing that a key could decrypt.

Without pseudonyms (an unmasked export) the secrets and sealed values are removed all the same.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sluice.config import AppSettings
from sluice.envs.pseudonyms import Pseudonymizer
from sluice.guard.crypto import MAGIC
from sluice.guard.pii import PiiMasker

#: Distinct texts remembered with what they masked to.
_MEMO_ENTRIES = 4096
# The smallest integer worth scanning: shorter numbers hold no built-in PII type.
_MIN_PII_INT = 10**6
#: What a removed secret reads as in a fixture.
REMOVED = "[removed]"
# Words of a field name that mark its value as a secret ("clientSecret", "X-Api-Key",
# "db_password"); a field named only "token" is one, "input_tokens" (a count) is not.
_SECRET_WORDS = frozenset(
    {"secret", "secrets", "password", "passwd", "pwd", "passphrase", "apikey", "authorization",
     "credential", "credentials", "cookie", "token", "privatekey", "signature"}
)  # fmt: skip
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"),
     ("session", "id"), ("auth", "token"), ("access", "token"), ("refresh", "token"),
     ("id", "token"), ("client", "secret"), ("signing", "key"), ("encryption", "key")}
)  # fmt: skip
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Secrets recognized in free text, whatever field they are in.
_SECRET_TEXT = re.compile(
    "|".join(
        (
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            r"\bsk[-_][A-Za-z0-9][A-Za-z0-9_-]{15,}",  # Sluice (sk_id_secret), OpenAI, Stripe
            r"\b(?:rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
            r"\bwhsec_[A-Za-z0-9+/=]{16,}",  # Standard Webhooks signing secrets
            r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
            r"\bAIza[0-9A-Za-z_-]{35}",  # Google API keys
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
            r"\b(?i:bearer|basic)\s+[A-Za-z0-9._~+/-]{12,}=*",
        )
    )
)
# user:password@ in a URL: the password goes, the rest stays readable.
_URL_PASSWORD = re.compile(r"(?<=://)([^/\s:@]+):([^/\s@]+)@")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")


def is_secret_field(name: str) -> bool:
    """Whether a field called ``name`` holds a secret, from the words of its name."""
    words = [w.lower() for w in _WORD.findall(name)]
    if any(w in _SECRET_WORDS for w in words) or "".join(words) in _SECRET_WORDS:
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def _sealed(text: str) -> bool:
    """Whether ``text`` carries base64 of a payload sealed by the at-rest codec."""
    for match in _BASE64.finditer(text):
        chunk = match.group()
        try:
            raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), altchars=b"-_"
                                   if "-" in chunk or "_" in chunk else None)  # fmt: skip
        except (binascii.Error, ValueError):
            continue
        if raw.startswith(MAGIC):
            return True
    return MAGIC.decode() + "\x01" in text


def configured_secrets(settings: AppSettings) -> list[str]:
    """The secret values an app's configuration holds: webhook secrets, encryption keys, and
    every ``SLUICE_*`` variable whose name marks a secret. A fixture must contain none."""
    found: list[str] = []
    for source in (settings.extra.get("sources") or {}).values():
        if isinstance(source, Mapping):
            found += [str(s) for s in source.get("secrets") or () if isinstance(s, str)]
    encryption = settings.extra.get("encryption") or {}
    if isinstance(encryption, Mapping):
        found += [str(k) for k in (encryption.get("keys") or {}).values()]
    for name, value in settings.env.items():
        if is_secret_field(name) or name.endswith(("_KEYS", "_SECRETS")):
            found += value.replace("=", " ").split()
    # Short values would match ordinary words; real secrets are long.
    return sorted({s for s in found if len(s) >= 12}, key=len, reverse=True)


class FixtureMasker:
    """Masks decoded payloads for a fixture file (see the module docstring).

    ``pseudonyms`` None keeps PII as it is (an unmasked export) but still removes secrets and
    sealed values. ``secrets`` are exact values to remove wherever they appear.
    """

    def __init__(
        self,
        pseudonyms: Pseudonymizer | None,
        secrets: Iterable[str] = (),
        masker: PiiMasker | None = None,
    ) -> None:
        self._pseudonyms = pseudonyms
        self._masker = masker or PiiMasker()
        self._secrets = [s for s in secrets if s]
        self.replaced = 0  # PII values pseudonymized
        self.removed = 0  # secrets and sealed values removed
        # An event's text recurs in its input, its steps' outputs and its result: each
        # distinct text is masked once (what it masked to, and the counts it added).
        self._memo: dict[str, tuple[str, int, int]] = {}

    def text(self, value: str) -> str:
        """One text with its secrets removed and its PII pseudonymized."""
        found = self._memo.get(value)
        if found is not None:
            self.replaced += found[1]
            self.removed += found[2]
            return found[0]
        replaced, removed = self.replaced, self.removed
        masked = self._mask_text(value)
        if len(self._memo) >= _MEMO_ENTRIES:
            self._memo.clear()  # bounded; a new page of events brings new texts anyway
        self._memo[value] = (masked, self.replaced - replaced, self.removed - removed)
        return masked

    def _mask_text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                self.removed += value.count(secret)
                value = value.replace(secret, REMOVED)
        value, count = _SECRET_TEXT.subn(REMOVED, value)
        value, urls = _URL_PASSWORD.subn(rf"\1:{REMOVED}@", value)
        self.removed += count + urls
        if _sealed(value):
            self.removed += 1
            return REMOVED
        if self._pseudonyms is None:
            return value
        entities = self._masker.detect(value)
        if not entities:
            return value
        parts: list[str] = []
        position = 0
        for entity in entities:
            parts.append(value[position : entity.start])
            parts.append(self._pseudonyms.fake(entity.type, value[entity.start : entity.end]))
            position = entity.end
        parts.append(value[position:])
        self.replaced += len(entities)
        return "".join(parts)

    def value(self, value: Any) -> Any:
        """A decoded JSON value, masked throughout (secret fields' values removed)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _MIN_PII_INT:
            # A phone or card number kept as a JSON number: masked as its digits, and kept a
            # number (the fake's digits) so the payload keeps its shape.
            digits = str(value)
            masked = self.text(digits)
            if masked != digits:
                fake = "".join(char for char in masked if char.isdigit())
                return int(fake) if fake else masked
            return value
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if is_secret_field(str(key)) and item not in (None, "", [], {}):
                    self.removed += 1
                    out[self.text(str(key))] = REMOVED
                else:
                    out[self.text(str(key))] = self.value(item)
            return out
        return value
