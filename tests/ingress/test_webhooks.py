"""Webhooks: signatures, mapping, quarantine, idempotency under concurrency, PII masking."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import sqlite3
import time

import orjson
import pytest

from sluice.ingress import intake
from sluice.outbound.signing import decode_secret, sign
from sluice.store.base import EventState
from sluice.testing import wait_until
from tests.ingress.conftest import SECRET_NEW, SECRET_OLD, Ingress

HOOK = "/v1/hooks/helpdesk"


def _delivery(text: str = "My card never arrived", subject: str = "card") -> bytes:
    return orjson.dumps(
        {"ticket": {"description": text, "subject": subject}, "requester": {"email": "A@X.IO"}}
    )


class TestSignatures:
    async def test_valid_signature_is_accepted_and_mapped(self, ingress: Ingress) -> None:
        """A signed delivery is accepted; the mapping builds the workflow input."""
        body = _delivery()
        resp = await ingress.http.post(HOOK, content=body, headers=ingress.signed(body))
        assert resp.status_code == 202
        assert resp.json()["status"] == "accepted"
        record = await ingress.app.runtime.wait(resp.json()["event_id"], 5)
        assert record.tenant == "acme"
        assert orjson.loads(record.input) == {
            "text": "My card never arrived",
            "subject": "card",
            "email": "a@x.io",
        }

    async def test_an_old_secret_still_verifies_during_rotation(self, ingress: Ingress) -> None:
        """Any configured secret verifies; several v1 signatures may be sent."""
        body = _delivery()
        headers = ingress.signed(body, secret=SECRET_OLD)
        headers["webhook-signature"] = "v1,bm9wZQ== " + headers["webhook-signature"]
        assert (await ingress.http.post(HOOK, content=body, headers=headers)).status_code == 202

    @pytest.mark.parametrize(
        ("tamper", "detail"),
        [
            (lambda h: h.pop("webhook-signature"), "missing webhook-id"),
            (lambda h: h.update({"webhook-signature": "v1,AAAA"}), "no valid webhook signature"),
            (lambda h: h.update({"webhook-id": "other"}), "no valid webhook signature"),
            (lambda h: h.update({"webhook-timestamp": str(int(time.time()) - 301)}),
             "more than 300 s from now"),
        ],
    )  # fmt: skip
    async def test_bad_signatures_are_401(
        self, ingress: Ingress, tamper: object, detail: str
    ) -> None:
        """Missing, wrong or stale signatures are refused and nothing is written."""
        body = _delivery()
        headers = ingress.signed(body)
        tamper(headers)  # type: ignore[operator]  # a parametrized lambda
        resp = await ingress.http.post(HOOK, content=body, headers=headers)
        assert resp.status_code == 401
        assert detail in resp.json()["detail"]
        assert await ingress.app.store.list_events() == []
        assert await ingress.app.store.list_quarantine() == []

    @pytest.mark.parametrize(
        "spell",
        [
            lambda t: f"+{t}", lambda t: f"0{t}", lambda t: f" {t}", lambda t: f"{t} ",
            lambda t: f"{t // 1000}_{t % 1000:03d}", lambda t: f"{t}.0", lambda t: "soon",
            lambda t: f"{t}\u0663",
        ],
        ids=["plus", "leading-zero", "leading-space", "trailing-space", "underscore", "float",
             "word", "arabic-indic-digit"],
    )  # fmt: skip
    async def test_timestamps_are_digits_only(self, ingress: Ingress, spell: object) -> None:
        """A timestamp int() would read but that is not plain digits is a 400 naming the rule,
        even when signed over that very spelling; nothing is written."""
        body = _delivery()
        now = int(time.time())
        stamp = spell(now)  # type: ignore[operator]  # a parametrized lambda
        headers = ingress.signed(body)
        headers["webhook-timestamp"] = stamp
        headers["webhook-signature"] = sign(decode_secret(SECRET_NEW), "msg_1", now, body)
        resp = await ingress.http.post(
            HOOK, content=body, headers=[(k.encode(), v.encode()) for k, v in headers.items()]
        )
        assert resp.status_code == 400, stamp
        assert resp.headers["content-type"] == "application/problem+json"
        assert "ASCII digits without a leading zero" in resp.json()["detail"]
        assert await ingress.app.store.list_events() == []
        assert await ingress.app.store.list_quarantine() == []

    @pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    async def test_a_repeated_webhook_header_is_400(self, ingress: Ingress, header: str) -> None:
        """Two of one webhook header are refused, not resolved by taking the first."""
        body = _delivery()
        signed = ingress.signed(body)
        headers = [*signed.items(), (header, signed[header])]
        resp = await ingress.http.post(HOOK, content=body, headers=headers)
        assert resp.status_code == 400
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["detail"] == f"the {header} header is sent more than once: send it once"
        assert await ingress.app.store.list_events() == []

    async def test_a_secret_from_another_source_fails(self, ingress: Ingress) -> None:
        """A body signed with an unknown secret is refused."""
        body = _delivery()
        stranger = "whsec_" + base64.b64encode(b"s" * 24).decode()
        resp = await ingress.http.post(
            HOOK, content=body, headers=ingress.signed(body, secret=stranger)
        )
        assert resp.status_code == 401

    async def test_unknown_source_is_404(self, ingress: Ingress) -> None:
        """Only configured sources exist."""
        body = _delivery()
        resp = await ingress.http.post("/v1/hooks/nope", content=body, headers=ingress.signed(body))
        assert resp.status_code == 404


class TestQuarantine:
    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b'{"ticket": {}}', "mapping: text: $.ticket.description not found in the payload"),
            (
                orjson.dumps({"ticket": {"description": ""}, "requester": {"email": "a@b.c"}}),
                "$.text: expected at least 1 chars, got string (0 chars)",
            ),
            (b"not json at all", "body is not JSON"),
        ],
    )
    async def test_malformed_deliveries_are_quarantined_with_202(
        self, ingress: Ingress, body: bytes, reason: str
    ) -> None:
        """The sender gets 202 quarantined (so it stops retrying); nothing is enqueued."""
        resp = await ingress.http.post(
            HOOK, content=body, headers={**ingress.signed(body), "content-type": "application/json"}
        )
        assert resp.status_code == 202
        assert resp.json()["status"] == "quarantined"
        (item,) = await ingress.app.store.list_quarantine()
        assert item.reason.startswith(reason)
        assert item.payload == body
        assert item.id == resp.json()["event_id"]
        assert await ingress.app.store.list_events() == []

    @pytest.mark.parametrize(
        "body",
        [
            b'{"ticket": {"description": "deep", "x": ' + b"[" * 300 + b"]" * 300 + b"}}",
            orjson.dumps({"ticket": {"description": "wide", "x": list(range(5_000))}}),
            b"[" * 1_100 + b"]" * 1_100,  # past the parser's own depth limit
        ],
        ids=["deep", "wide", "deeper-than-the-parser"],
    )
    async def test_too_deep_or_too_wide_json_is_413(self, ingress: Ingress, body: bytes) -> None:
        """Valid JSON past the shape limits is refused with a problem naming the limit and
        stored nowhere (no event, no quarantine entry: no replay could take it)."""
        resp = await ingress.http.post(HOOK, content=body, headers=ingress.signed(body))
        assert resp.status_code == 413
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["detail"] in (
            "JSON nesting deeper than 32 levels",
            "more than 2000 JSON fields and items",
        )
        assert await ingress.app.store.list_events() == []
        assert await ingress.app.store.list_quarantine() == []

    async def test_redelivery_of_a_quarantined_event_is_the_same_receipt(
        self, ingress: Ingress
    ) -> None:
        """The sender retrying a quarantined delivery gets the same receipt, no second entry."""
        body = b'{"ticket": {}}'
        first = await ingress.http.post(HOOK, content=body, headers=ingress.signed(body, "m9"))
        again = await ingress.http.post(HOOK, content=body, headers=ingress.signed(body, "m9"))
        assert again.json() == {**first.json(), "duplicate": True}
        assert len(await ingress.app.store.list_quarantine()) == 1


class TestIdempotency:
    async def test_fifty_concurrent_deliveries_make_one_event(self, ingress: Ingress) -> None:
        """50 concurrent deliveries of one webhook produce exactly one event."""
        body = _delivery()
        headers = ingress.signed(body, msg_id="msg_concurrent")
        responses = await asyncio.gather(
            *(ingress.http.post(HOOK, content=body, headers=headers) for _ in range(50))
        )
        assert {r.status_code for r in responses} == {202}
        assert len({r.json()["event_id"] for r in responses}) == 1
        assert sum(not r.json().get("duplicate") for r in responses) == 1
        assert len(await ingress.app.store.list_events()) == 1

    async def test_same_id_different_body_is_409(self, ingress: Ingress) -> None:
        """A webhook id reused for another payload is a conflict."""
        one, two = _delivery("one"), _delivery("two")
        await ingress.http.post(HOOK, content=one, headers=ingress.signed(one, "dup"))
        resp = await ingress.http.post(HOOK, content=two, headers=ingress.signed(two, "dup"))
        assert resp.status_code == 409

    async def test_keys_expire_after_the_window(self, ingress: Ingress) -> None:
        """Past the idempotency window the same id is a new event."""
        body = _delivery()
        await ingress.http.post(HOOK, content=body, headers=ingress.signed(body, "old"))
        assert await ingress.app.store.purge_idempotency(time.time() + 1) == 1
        ingress.gateway._recent.clear()
        resp = await ingress.http.post(HOOK, content=body, headers=ingress.signed(body, "old"))
        assert "duplicate" not in resp.json()
        assert len(await ingress.app.store.list_events()) == 2

    async def test_expired_keys_are_purged_in_the_background(self, ingress: Ingress) -> None:
        """The gateway's purge loop removes keys older than the window."""
        body = _delivery()
        await ingress.http.post(HOOK, content=body, headers=ingress.signed(body, "p1"))
        short = intake.Ingress(ingress.app, dataclasses.replace(ingress.gateway.settings,
                                                         idempotency_window_s=0.01))  # fmt: skip
        db = ingress.app.settings.sqlite_path()

        def keys_left() -> int:
            with contextlib.closing(sqlite3.connect(db)) as conn:
                return int(conn.execute("SELECT count(*) FROM idempotency").fetchone()[0])

        assert keys_left() == 1
        task = asyncio.create_task(short.purge_expired_keys(every_s=0.05))
        try:
            await wait_until(lambda: keys_left() == 0, "the purge loop to remove the key")
        finally:
            task.cancel()


class TestPiiAndEncryption:
    async def test_pii_is_masked_before_the_event_is_written(self, ingress: Ingress) -> None:
        """Marked text fields are masked with stable placeholders; the original is kept
        encrypted because the workflow asks for it."""
        body = _delivery(
            text="Card 4111 1111 1111 1111 stolen, mail me at jo@ex.com or jo@ex.com",
            subject="jo@ex.com",
        )
        resp = await ingress.http.post(HOOK, content=body, headers=ingress.signed(body))
        record = await ingress.app.runtime.wait(resp.json()["event_id"], 5)
        data = orjson.loads(record.input)
        assert data["text"] == "Card <CARD_1> stolen, mail me at <EMAIL_1> or <EMAIL_1>"
        assert data["subject"] == "<EMAIL_1>"
        assert record.state is EventState.DONE
        assert b"4111" not in (record.result or b"")

    async def test_raw_database_holds_no_pii_or_text(self, ingress: Ingress) -> None:
        """Reading the database file finds none of the seeded PII or ticket text."""
        secret_text = "Zanzibar-unique-phrase lost my wallet"
        body = _delivery(text=f"{secret_text}, IBAN GB82 WEST 1234 5698 7654 32")
        resp = await ingress.http.post(HOOK, content=body, headers=ingress.signed(body))
        await ingress.app.runtime.wait(resp.json()["event_id"], 5)
        bad = b'{"ticket": {"description": "", "note": "Zanzibar-unique-phrase"}}'
        await ingress.http.post(HOOK, content=bad, headers=ingress.signed(bad, "q1"))
        api = await ingress.http.post(
            "/v1/workflows/tickets/runs", json={"text": f"{secret_text} 555-867-5309"},
            headers=ingress.auth(),
        )  # fmt: skip
        await ingress.app.runtime.wait(api.json()["event_id"], 5)
        await ingress.app.stop()  # flush and checkpoint nothing away: read every file
        db = ingress.app.settings.sqlite_path()
        raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
        for needle in (b"Zanzibar", b"GB82", b"WEST", b"a@x.io", b"A@X.IO", b"867-5309"):
            assert needle not in raw, needle
