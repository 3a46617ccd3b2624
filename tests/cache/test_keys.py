"""Prompt normalization and cache keys."""

from __future__ import annotations

from sluice.cache import normalize_prompt, response_key
from sluice.models.base import ModelRequest


class TestNormalize:
    def test_whitespace_is_folded(self) -> None:
        """Leading, trailing and repeated whitespace of any kind collapse to single spaces."""
        assert normalize_prompt("  My card\t\thas not\n arrived \r\n") == "My card has not arrived"

    def test_case_is_kept_unless_asked(self) -> None:
        """Case folds only for models declared case-insensitive."""
        assert normalize_prompt("Lost my PIN") == "Lost my PIN"
        assert normalize_prompt("Lost my PIN", casefold=True) == "lost my pin"

    def test_unicode_is_composed(self) -> None:
        """Composed and decomposed accents give the same text."""
        assert normalize_prompt("caf\u00e9") == normalize_prompt("cafe\u0301")


class TestResponseKey:
    def test_equal_requests_share_a_key(self) -> None:
        """Whitespace variants and parameter order do not change the key."""
        a = ModelRequest("my card  is late", params={"temperature": 0, "top_p": 1})
        b = ModelRequest(" my card is late\n", params={"top_p": 1, "temperature": 0})
        assert response_key("m", "1", a) == response_key("m", "1", b)

    def test_everything_that_shapes_an_answer_is_in_the_key(self) -> None:
        """Model, version, prompt, parameters, labels and context each change the key."""
        base = ModelRequest("my card is late")
        keys = {
            response_key("m", "1", base),
            response_key("other", "1", base),
            response_key("m", "2", base),
            response_key("m", "1", ModelRequest("my card is lost")),
            response_key("m", "1", ModelRequest("my card is late", params={"temperature": 1})),
            response_key("m", "1", ModelRequest("my card is late", labels=["a", "b"])),
            response_key("m", "1", ModelRequest("my card is late", context=[{"id": "t-1"}])),
            response_key("m", "1", ModelRequest("My card is late")),
        }
        assert len(keys) == 8

    def test_casefold_merges_case_variants(self) -> None:
        """With casefold, case variants share one key."""
        a, b = ModelRequest("Lost PIN"), ModelRequest("lost pin")
        assert response_key("m", "1", a, casefold=True) == response_key("m", "1", b, casefold=True)

    def test_key_is_short_and_fixed(self) -> None:
        """Keys are a namespace and a SHA-256, whatever the prompt's length."""
        key = response_key("m", "1", ModelRequest("x" * 10_000))
        assert key.startswith("resp:")
        assert len(key) == len("resp:") + 64
