"""The fixture masker on payloads: secrets by field name and by shape, configured secrets,
sealed values, PII in keys and values."""

from __future__ import annotations

import base64
from pathlib import Path

from sluice.config import parse_settings
from sluice.envs.masking import REMOVED, FixtureMasker, configured_secrets, is_secret_field
from sluice.envs.pseudonyms import Pseudonymizer
from sluice.guard.crypto import AesGcmCodec, Keyring
from sluice.guard.pii import PiiMasker

KEY = bytes(range(32))


def test_secret_field_names() -> None:
    """Field names are read word by word: a count of tokens is not a token."""
    for name in ("password", "api_key", "apiKey", "X-Api-Key", "client_secret", "Authorization",
                 "refresh_token", "token", "db_password", "sessionId", "private_key"):  # fmt: skip
        assert is_secret_field(name), name
    for name in ("input_tokens", "max_tokens", "text", "ticket_id", "keyboard", "author"):
        assert not is_secret_field(name), name


def test_secrets_and_pii_in_a_payload() -> None:
    """Secret fields lose their values, secrets in text are cut out, PII becomes fakes; keys
    holding PII are masked too; numbers and other values pass."""
    masker = FixtureMasker(Pseudonymizer(KEY), secrets=["configured-secret-value-123"])
    payload = {
        "text": "mail jo@example.org, key sk-proj-abcdefghijklmnop1234,"
        " configured-secret-value-123",
        "headers": {"Authorization": "Bearer abc.def.ghi", "accept": "json"},
        "db": "postgresql://app:hunter2hunter2@db.internal/prod",
        "jo@example.org": {"count": 3, "input_tokens": 12},
        "aws": "AKIAIOSFODNN7EXAMPLE",
    }
    out = masker.value(payload)
    text = repr(out)
    for secret in ("sk-proj-abcdefghijklmnop1234", "configured-secret-value-123", "abc.def.ghi",
                   "hunter2hunter2", "AKIAIOSFODNN7EXAMPLE", "jo@example.org"):  # fmt: skip
        assert secret not in text, secret
    assert out["headers"] == {"Authorization": REMOVED, "accept": "json"}
    assert out["db"] == f"postgresql://app:{REMOVED}@db.internal/prod"
    (fake_key,) = [k for k in out if "@" in k]
    assert fake_key in out["text"]  # one value, one fake, in a key and in a text
    assert out[fake_key] == {"count": 3, "input_tokens": 12}
    assert masker.replaced == 2
    assert masker.removed == 5


def test_sealed_values_are_removed() -> None:
    """A value that carries an at-rest envelope (as base64) is removed whole, masked or not."""
    codec = AesGcmCodec(Keyring.from_base64({"k1": base64.b64encode(KEY).decode()}, "k1"))
    sealed = base64.b64encode(codec.encode(b"card 4111 1111 1111 1111")).decode()
    masker = FixtureMasker(None)
    assert masker.value({"blob": sealed, "note": f"copy: {sealed}"}) == {
        "blob": REMOVED, "note": REMOVED
    }  # fmt: skip
    assert masker.text("plain text stays") == "plain text stays"


def test_configured_secrets_come_from_the_app(tmp_path: Path) -> None:
    """Webhook secrets, encryption keys and secret-looking SLUICE_* variables."""
    raw = {
        "sources": {"hook": {"workflow": "w", "secrets": ["whsec_abcdefghijklmnopqrstu"]}},
        "encryption": {"active": "k1", "keys": {"k1": "c2VjcmV0LWtleS1ieXRlcy0xMjM0NQ=="}},
    }
    environ = {"SLUICE_OPENAI_API_KEY": "sk-live-0123456789abcdef",
               "SLUICE_PORT": "8000123456789"}  # fmt: skip
    found = configured_secrets(parse_settings(raw, tmp_path, environ))
    assert set(found) == {"whsec_abcdefghijklmnopqrstu", "c2VjcmV0LWtleS1ieXRlcy0xMjM0NQ==",
                          "sk-live-0123456789abcdef"}  # fmt: skip


def test_pii_kept_as_json_numbers() -> None:
    """A card or phone number stored as a number is replaced by a fake number of its kind;
    ordinary numbers stay."""
    masker = FixtureMasker(Pseudonymizer(KEY))
    out = masker.value({"card": 4111111111111111, "amount": 1250, "phone": 4155552671})
    assert out["amount"] == 1250
    assert isinstance(out["card"], int)
    assert out["card"] != 4111111111111111
    assert isinstance(out["phone"], int)
    assert out["phone"] != 4155552671
    assert [e.type.value for e in PiiMasker().detect(str(out["card"]))] == ["CARD"]
