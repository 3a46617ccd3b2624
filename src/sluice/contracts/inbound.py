"""Inbound contracts: what each webhook source sends, through the app's real way in.

For each source with a schema in the app's contracts (:mod:`sluice.contracts.manifest`):

1. **Statically**, every path the source's mapping reads must exist in the source's schema,
   and be required there unless the mapping gives a default.
2. **Valid payloads**, generated from the schema, signed with the source's secret and POSTed
   to ``/v1/hooks/{source}`` of the app started in this process: each must be accepted (202,
   not quarantined) and stored as an input that validates against the workflow's schema,
   with exactly the mapping's fields.
3. **Broken payloads**: valid ones with a mapped field removed or of the wrong type (those
   the mapping and the workflow's schema refuse): each must be quarantined (202
   ``quarantined``).
4. **Random JSON**: any answer but a 5xx; whatever is accepted must still validate.

No request may be answered with a 5xx.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sluice.contracts.harness import Running, ingress_app
from sluice.contracts.manifest import SourceContract
from sluice.contracts.results import CheckResult
from sluice.contracts.schemas import ANY_JSON, problems, strategy
from sluice.ingress.mapping import SourceMapping, compile_path
from sluice.ingress.settings import SourceSettings
from sluice.outbound.webhooks import signed_headers

#: Kept per result: enough to see the pattern, bounded.
_SHOWN = 5
_WRONG_TYPE: Any = [["not", "a", "scalar"]]


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    path: tuple[str | int, ...]
    raw: str
    has_default: bool


def _fields(mapping: Mapping[str, Any] | None) -> list[_Field]:
    out = []
    for name, rule in (mapping or {}).items():
        spec = {"path": rule} if isinstance(rule, str) else rule
        if isinstance(spec, Mapping) and "path" in spec:
            raw = str(spec["path"])
            out.append(_Field(str(name), compile_path(raw), raw, "default" in spec))
    return out


def static_problems(source: SourceSettings, schema: Mapping[str, Any]) -> list[str]:
    """Mapped paths the source's schema does not have, or has as optional without a default."""
    found = []
    for f in _fields(source.mapping):
        node: Any = schema
        where = "$"
        for part in f.path:
            if not isinstance(node, Mapping):
                break
            if isinstance(part, int):
                node = node.get("items", {})
                where += f"[{part}]"
                continue
            props = node.get("properties")
            if not isinstance(props, Mapping) or part not in props:
                has = ", ".join(props) if isinstance(props, Mapping) else "no properties"
                found.append(
                    f"mapping.{f.name}: {f.raw}: the source schema has no {part!r} "
                    f"under {where} (it has: {has})"
                )
                break
            if part not in (node.get("required") or ()) and not f.has_default:
                found.append(
                    f"mapping.{f.name}: {f.raw}: {part!r} is optional in the source "
                    "schema and the mapping gives no default"
                )
                break
            node = props[part]
            where += f".{part}"
    return found


def draw(values: st.SearchStrategy[Any], count: int) -> list[Any]:
    """Up to ``count`` values of ``values``, the same ones on every run (derandomized)."""
    out: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(values)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out[:count]


def _removed(payload: Any, path: tuple[str | int, ...]) -> Any:
    broken = copy.deepcopy(payload)
    node = broken
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return broken


def _replaced(payload: Any, path: tuple[str | int, ...], value: Any) -> Any:
    broken = copy.deepcopy(payload)
    node = broken
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return broken


def _has(payload: Any, path: tuple[str | int, ...]) -> bool:
    node = payload
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return False
        elif not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def broken_variants(
    valid: list[Any], source: SourceSettings, input_schema: Mapping[str, Any], limit: int
) -> list[tuple[str, Any]]:
    """Valid payloads broken where the mapping reads, kept when the mapping or the
    workflow's schema refuses them: ``(what was broken, payload)``."""
    mapping = SourceMapping(source.mapping)
    out: list[tuple[str, Any]] = []
    for payload in valid:
        for f in _fields(source.mapping):
            if not f.path or not _has(payload, f.path):
                continue
            for kind, broken in (
                ("removed", _removed(payload, f.path)),
                ("wrong type", _replaced(payload, f.path, _WRONG_TYPE)),
            ):
                data, found = mapping.apply(broken)
                if found or problems(input_schema, data, limit=1):
                    out.append((f"{f.raw} {kind}", broken))
            if len(out) >= limit:
                return out[:limit]
    return out


@dataclass
class _Tally:
    sent: int = 0
    accepted: int = 0
    quarantined: int = 0
    server_errors: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "refused": self.refused,
            "server_errors": self.server_errors,
        }


async def _post(
    running: Running, source: SourceSettings, payload: Any, msg_id: str
) -> tuple[int, dict[str, Any]]:
    body = orjson.dumps(payload)
    headers = signed_headers(source.secrets[0], msg_id, int(time.time()), body)
    resp = await running.http.post(f"/v1/hooks/{source.name}", content=body, headers=headers)
    try:
        answer = resp.json()
    except ValueError:
        answer = {}
    return resp.status_code, answer if isinstance(answer, dict) else {}


async def _input_problems(
    running: Running, event_id: str, schema: Mapping[str, Any], names: set[str]
) -> list[str]:
    record = await running.app.store.get_event(event_id, with_steps=False)
    data = orjson.loads(record.input)
    found = [f"input {p}" for p in problems(schema, data, limit=2)]
    if isinstance(data, dict) and names and set(data) != names:
        found.append(f"input fields {sorted(data)} are not the mapping's {sorted(names)}")
    return found


async def check_source(
    running: Running, contract: SourceContract, *, examples: int = 30
) -> CheckResult:
    """The inbound contract of one source, on an app started by :func:`ingress_app`."""
    started = time.perf_counter()
    name = f"inbound:{contract.name}"
    source = running.ingress.sources.get(contract.name)
    if source is None:
        known = ", ".join(running.ingress.sources) or "none"
        return CheckResult(
            name,
            False,
            f"inbound {contract.name}: no such source in sluice.yaml (sources: {known})",
        )
    wf = running.app.registry.get(source.workflow)
    static = static_problems(source, contract.schema)
    names = set(source.mapping or {})
    valid = draw(strategy(contract.schema), examples)
    broken = broken_variants(valid, source, wf.input_schema, examples)
    noise = draw(ANY_JSON, max(5, examples // 3))
    tallies = {"valid": _Tally(), "broken": _Tally(), "random": _Tally()}
    found: list[str] = []
    batches: tuple[tuple[str, list[tuple[str, Any]]], ...] = (
        ("valid", [("valid", p) for p in valid]),
        ("broken", broken),
        ("random", [("random", p) for p in noise]),
    )
    for kind, items in batches:
        tally = tallies[kind]
        for i, (what, payload) in enumerate(items):
            status, answer = await _post(running, source, payload, f"contract-{kind}-{i}")
            tally.sent += 1
            state = answer.get("status")
            if status >= 500:
                tally.server_errors += 1
                found.append(f"{kind} payload ({what}) answered {status}")
            elif status != 202:
                tally.refused += 1
                if kind != "random":
                    found.append(f"{kind} payload ({what}) answered {status}: {answer}")
            elif state == "quarantined":
                tally.quarantined += 1
                if kind == "valid":
                    item = await running.app.store.get_quarantined(str(answer["event_id"]))
                    found.append(f"valid payload quarantined: {'; '.join(item.problems[:2])}")
            else:
                tally.accepted += 1
                wrong = await _input_problems(
                    running, str(answer["event_id"]), wf.input_schema, names
                )
                if kind == "broken":
                    found.append(f"broken payload ({what}) was accepted")
                elif wrong:
                    found.append(f"{kind} payload accepted with a bad input: {wrong[0]}")
    v, b, r = tallies["valid"], tallies["broken"], tallies["random"]
    errors = v.server_errors + b.server_errors + r.server_errors
    passed = not static and not found and v.accepted == v.sent > 0 and b.quarantined == b.sent
    message = (
        f"inbound {contract.name} -> {wf.name}: {v.accepted}/{v.sent} valid payloads accepted; "
        f"{b.quarantined}/{b.sent} broken payloads quarantined; {r.sent} random payloads; "
        f"{errors} 5xx answers"
    )
    shown = [*static, *dict.fromkeys(found)][:_SHOWN]
    if shown:
        message += f"; first problem: {shown[0]}"
    figures = {kind: tally.as_dict() for kind, tally in tallies.items()}
    figures["static_problems"] = {"count": len(static)}
    return CheckResult(name, passed, message, figures, tuple(shown), time.perf_counter() - started)


async def check_inbound(
    app_dir: Path,
    sources: tuple[SourceContract, ...],
    *,
    examples: int = 30,
    environ: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """The inbound contracts of ``sources``, on one app started for them all."""
    if not sources:
        return []
    async with ingress_app(app_dir, environ) as running:
        return [await check_source(running, c, examples=examples) for c in sources]
