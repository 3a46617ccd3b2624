"""Secrets: envelope encryption with the at-rest keyring, versions, rotation, tampering, and
a value that does not print itself; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import time

import pytest

from sluice.errors import ConfigError, NotFoundError
from sluice.governance.secrets import (
    Secrets,
    SecretsUnavailableError,
    SecretValue,
    redact,
    reference_problems,
    references,
    substitute,
)
from sluice.guard.crypto import AesGcmCodec, Keyring, TamperedDataError, UnknownKeyError
from sluice.store.base import Store

VALUE = "sk-live-7Qm2yXcT9vLr"


def _key() -> bytes:
    return os.urandom(32)


def _codec(keys: dict[str, bytes], active: str) -> AesGcmCodec:
    return AesGcmCodec(Keyring(keys, active))


async def test_set_and_get_versions(store: Store) -> None:
    """Each set is a new version; get reads the latest or a named one."""
    secrets = Secrets(store, _codec({"k1": _key()}, "k1"), cache_ttl_s=0)
    assert await secrets.set("api", VALUE, "ada") == 1
    assert await secrets.set("api", "second", "bob") == 2
    assert (await secrets.get("api")).reveal() == "second"
    assert (await secrets.get("api", 1)).reveal() == VALUE
    info = await secrets.show("api")
    assert [(v.version, v.created_by, v.key_id) for v in info.versions] == [
        (1, "ada", "k1"), (2, "bob", "k1"),
    ]  # fmt: skip
    assert VALUE not in repr(info.as_dict())


async def test_stored_bytes_hold_neither_value_nor_data_key(store: Store) -> None:
    """The value is sealed under a fresh data key per version, which is itself wrapped."""
    secrets = Secrets(store, _codec({"k1": _key()}, "k1"))
    await secrets.set("a", VALUE, "ada")
    await secrets.set("b", VALUE, "ada")
    rows = await store.secret_versions()
    for row in rows:
        assert VALUE.encode() not in row.value
        assert row.wrapped_key.startswith(b"SLE")
    assert rows[0].value != rows[1].value  # same value, different data keys and nonces
    assert rows[0].wrapped_key != rows[1].wrapped_key


async def test_rotation_rewraps_keys_and_leaves_values(store: Store) -> None:
    """Rotating re-wraps every data key with the new active key; the sealed values do not
    change, every version still reads, and the old key can then be dropped."""
    old, new = _key(), _key()
    before = Secrets(store, _codec({"k1": old}, "k1"))
    await before.set("api", VALUE, "ada")
    await before.set("api", "second", "ada")
    sealed = [v.value for v in await store.secret_versions("api")]
    both = Secrets(store, _codec({"k1": old, "k2": new}, "k2"))
    assert await both.rotate() == 2
    assert await both.rotate() == 0  # nothing left to re-wrap
    assert [v.value for v in await store.secret_versions("api")] == sealed
    after = Secrets(store, _codec({"k2": new}, "k2"))
    assert (await after.get("api", 1)).reveal() == VALUE
    assert (await after.get("api")).reveal() == "second"
    assert {v.key_id for v in (await after.show("api")).versions} == {"k2"}
    stale = Secrets(store, _codec({"k1": old}, "k1"))
    with pytest.raises(UnknownKeyError):
        await stale.get("api")


async def test_a_value_moved_under_another_name_fails(store: Store) -> None:
    """The name is authenticated with the value: swapping rows between names is detected."""
    codec = _codec({"k1": _key()}, "k1")
    secrets = Secrets(store, codec)
    await secrets.set("a", VALUE, "ada")
    (row,) = await store.secret_versions("a")
    await store.put_secret("b", row.wrapped_key, row.value, time.time(), "mallory")
    with pytest.raises(TamperedDataError, match="b@1") as caught:
        await secrets.get("b")
    assert VALUE not in str(caught.value)


async def test_without_a_keyring_secrets_are_refused(store: Store) -> None:
    """No keyring: set and get say how to configure one; metadata still lists."""
    secrets = Secrets(store, None)
    with pytest.raises(SecretsUnavailableError, match="SLUICE_ENCRYPTION_KEYS"):
        await secrets.set("a", VALUE, "ada")
    with pytest.raises(SecretsUnavailableError):
        await secrets.get("a")
    assert await secrets.list() == []


async def test_names_values_and_missing(store: Store) -> None:
    """Bad names and empty or huge values are refused naming the rule; a missing secret is
    NotFoundError naming it."""
    secrets = Secrets(store, _codec({"k1": _key()}, "k1"))
    with pytest.raises(ConfigError, match="must match"):
        await secrets.set("bad name", VALUE, "ada")
    with pytest.raises(ConfigError, match="empty"):
        await secrets.set("a", "", "ada")
    with pytest.raises(ConfigError, match="over 65536"):
        await secrets.set("a", "x" * 70_000, "ada")
    with pytest.raises(NotFoundError, match="'nope'"):
        await secrets.get("nope")
    with pytest.raises(NotFoundError):
        await secrets.delete("nope")


async def test_the_cache_forgets_on_set(store: Store) -> None:
    """A value set in this process is read at once, cache or not."""
    secrets = Secrets(store, _codec({"k1": _key()}, "k1"), cache_ttl_s=3600)
    await secrets.set("a", "one", "ada")
    assert (await secrets.get("a")).reveal() == "one"
    await secrets.set("a", "two", "ada")
    assert (await secrets.get("a")).reveal() == "two"


def test_a_secret_value_does_not_print_itself() -> None:
    """repr, str and f-strings show the name, never the value; pickling is refused."""
    import pickle

    value = SecretValue(VALUE, "api@3")
    for shown in (repr(value), str(value), f"{value}", f"{value!r}", f"{value}"):
        assert VALUE not in shown
        assert "api@3" in shown
    with pytest.raises(TypeError):
        pickle.dumps(value)


def test_references_and_redaction() -> None:
    """References are found at any depth, bad names reported with their path, values
    substituted, and redact puts the reference back in place of a value."""
    section = {"models": {"llm": {"api_key": "${secret:llm_key}", "n": 3}},
               "hooks": ["Bearer ${secret:hook}", "plain"]}  # fmt: skip
    assert references(section) == {"llm_key", "hook"}
    values = {"llm_key": SecretValue("AAA", "llm_key@1"), "hook": SecretValue("BBB", "hook@1")}
    assert substitute(section, values) == {
        "models": {"llm": {"api_key": "AAA", "n": 3}}, "hooks": ["Bearer BBB", "plain"],
    }  # fmt: skip
    assert reference_problems({"a": {"b": ["${secret:no good}"]}}) == [
        "a.b[0]: ${secret:no good}: a secret name must match [A-Za-z][A-Za-z0-9_.-]{0,127}"
    ]
    assert redact("got 'AAA' and BBB", values) == "got '${secret:llm_key}' and ${secret:hook}"
