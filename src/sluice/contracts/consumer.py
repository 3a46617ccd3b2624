"""Consumer checks: what the app sends to each partner conforms to the partner's spec.

A mock generated from the partner's spec (:mod:`sluice.contracts.mock`) is served on a free
port of 127.0.0.1 and the app's own client code is pointed at it; the mock checks and records
every request. A check passes when the client made requests and every one conformed.

- ``client: webhook``: the app is started whole in this process (pools, models, the steps it
  declares) with its ``deliver`` step sending to the mock, and events generated from the
  workflow's input schema are run to the end: the requests are the real deliveries of real
  results, signed as in production.
- ``client: openai``: Sluice's OpenAI-compatible client (:class:`~sluice.models.chat_model.
  ChatModel`) makes the calls the app's steps make: a classification over the partner's labels,
  a generation per prompt template of the app (its messages, parameters and output schema), a
  generation with a tool, and the model listing.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

from sluice.config import load_settings
from sluice.contracts.harness import full_app
from sluice.contracts.inbound import draw
from sluice.contracts.manifest import PartnerContract
from sluice.contracts.mock import Mock, Recorded
from sluice.contracts.results import CheckResult
from sluice.contracts.schemas import strategy
from sluice.errors import ConfigError, StepError
from sluice.models.base import ModelRequest
from sluice.models.chat_model import ChatModel
from sluice.models.openai_client import ClientSettings, OpenAIClient
from sluice.outbound.policy import EgressPolicy
from sluice.prompts.prompt_set import load_prompts
from sluice.store.base import EventState
from sluice.testing.servers import AsgiServer
from sluice.workflow.model import Workflow
from sluice.workflow.registry import WorkflowRegistry

#: The ``SLUICE_*`` variable holding the signing secret of deliveries to a mock.
SECRET_ENV = "SLUICE_CONTRACTS_WEBHOOK_SECRET"  # noqa: S105 - the variable's name
# A fixed key: it signs deliveries to a mock on 127.0.0.1 and nothing else.
_SECRET = "whsec_Y29udHJhY3QtY2hlY2tzLXNpZ25pbmcta2V5"  # noqa: S105 - a test key for the mock  # pragma: allowlist secret
_SHOWN = 5
_DEFAULT_LABELS = ("yes", "no")
_MAX_LABELS = 200
_EVENT_TIMEOUT_S = 120.0
_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by its id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


def _summary(name: str, partner: PartnerContract, records: list[Recorded], what: str) -> str:
    valid = sum(r.valid for r in records)
    return (
        f"consumer {name} ({partner.client}{what}): {valid}/{len(records)} requests valid "
        f"against {partner.spec.source.name}"
    )


def _problems(records: list[Recorded]) -> list[str]:
    out = [f"{r.method} {r.path}: {'; '.join(r.problems)}" for r in records if not r.valid]
    return list(dict.fromkeys(out))[:_SHOWN]


def _deliver_steps(wf: Workflow, step: str | None) -> list[str]:
    return [s.name for s in wf.steps if (s.name == step if step else s.uses == "deliver")]


def _pick(registry: WorkflowRegistry, partner: PartnerContract) -> tuple[Workflow, list[str]]:
    if partner.workflow is not None:
        wf = registry.get(partner.workflow)
        steps = _deliver_steps(wf, partner.step)
        if not steps:
            raise ConfigError(
                f"partners.{partner.name}: workflow {wf.name!r} has no step "
                f"{partner.step or 'using deliver'}"
            )
        return wf, steps
    found = [(wf, _deliver_steps(wf, partner.step)) for wf in registry]
    found = [(wf, steps) for wf, steps in found if steps]
    if len(found) != 1:
        raise ConfigError(
            f"partners.{partner.name}: name the workflow (workflow: NAME); "
            f"{len(found)} workflows have a deliver step"
        )
    return found[0]


async def check_webhook(
    app_dir: Path,
    partner: PartnerContract,
    *,
    events: int = 5,
    environ: Mapping[str, str] | None = None,
) -> CheckResult:
    """Run ``events`` events through the app with its deliveries sent to the partner's mock."""
    started = time.perf_counter()
    posts = [op for op in partner.spec.operations if op.method == "POST" and "{" not in op.path]
    if not posts:
        return CheckResult(
            f"consumer:{partner.name}",
            False,
            f"consumer {partner.name}: "
            f"{partner.spec.source.name} has no POST operation to deliver to",
        )
    mock = Mock(partner.spec)
    env = {**(os.environ if environ is None else environ), SECRET_ENV: _SECRET}
    settings = load_settings(app_dir, environ=env)
    if settings.workflows_dir is None:
        raise ConfigError(f"{app_dir}: no workflow directory configured")
    registry = WorkflowRegistry.from_directory(settings.workflows_dir, settings.pools)
    wf, steps = _pick(registry, partner)
    async with AsgiServer(mock.app) as server:
        url = server.url + partner.spec.base_path + posts[0].path
        replaced = tuple(
            dataclasses.replace(s, options={**s.options, "url": url, "secret_env": SECRET_ENV})
            if s.name in steps
            else s
            for s in wf.steps
        )
        redirected = dataclasses.replace(wf, steps=replaced)
        workflows = [redirected if w.name == wf.name else w for w in registry]
        # The mock listens on loopback: allowed by name and by address for this check only
        # (the egress policy refuses loopback unless outbound.allow_private names it).
        outbound = dict(settings.extra.get("outbound") or {})
        outbound["allow"] = [*outbound.get("allow", []), f"127.0.0.1:{server.port}"]
        outbound["allow_private"] = [*outbound.get("allow_private", []), "127.0.0.1/32"]
        scoped = dataclasses.replace(settings, extra={**settings.extra, "outbound": outbound})
        inputs = draw(strategy(wf.input_schema), events)
        states: dict[str, int] = {}
        errors: list[str] = []
        async with full_app(scoped, WorkflowRegistry(workflows)) as running:
            ids = [await running.app.runtime.submit(wf.name, data) for data in inputs]
            for event_id in ids:
                record = await running.app.runtime.wait(event_id, _EVENT_TIMEOUT_S)
                states[record.state.value] = states.get(record.state.value, 0) + 1
                if record.state is not EventState.DONE and record.error:
                    errors.append(f"event {record.state.value}: {record.error.splitlines()[0]}")
    records = mock.records()
    done = states.get(EventState.DONE.value, 0)
    passed = bool(records) and all(r.valid for r in records) and done == len(inputs)
    message = _summary(partner.name, partner, records, f", {wf.name}.{'/'.join(steps)}")
    message += f"; {done}/{len(inputs)} events done"
    shown = [*_problems(records), *dict.fromkeys(errors)][:_SHOWN]
    if not records:
        shown.insert(0, "the app sent no request to the partner")
    if shown:
        message += f"; first problem: {shown[0]}"
    figures = {
        "requests": len(records),
        "valid": sum(r.valid for r in records),
        "events": len(inputs),
        "states": states,
    }
    return CheckResult(
        f"consumer:{partner.name}",
        passed,
        message,
        figures,
        tuple(shown),
        time.perf_counter() - started,
    )


def read_labels(path: Path | None) -> tuple[str, ...]:
    """Labels from a JSON list or a CSV with a ``label`` column (first ``_MAX_LABELS``)."""
    if path is None:
        return _DEFAULT_LABELS
    try:
        if path.suffix == ".json":
            labels = [str(item) for item in json.loads(path.read_text())]
        else:
            with path.open(newline="") as handle:
                labels = list(dict.fromkeys(row["label"] for row in csv.DictReader(handle)))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: cannot read labels: {exc}") from exc
    if not labels:
        raise ConfigError(f"{path}: no labels")
    return tuple(labels[:_MAX_LABELS])


async def _calls(
    model: ChatModel, client: OpenAIClient, app_dir: Path, labels: tuple[str, ...]
) -> tuple[int, list[str]]:
    """Make the calls the app's steps make; the answers' own failures are returned."""
    failures: list[str] = []
    requests: list[ModelRequest] = [
        ModelRequest(text="My card has not arrived yet.", labels=labels),
        ModelRequest(
            text="",
            messages=[{"role": "user", "content": "Where is order 42?"}],
            tools=[_TOOL],
            params={"tool_choice": "auto"},
        ),
    ]
    for template in load_prompts(app_dir).values():
        messages = [{"role": m.role, "content": m.content} for m in template.messages]
        requests.append(
            ModelRequest(
                text="",
                messages=messages,
                params=dict(template.params),
                output_schema=template.output_schema,
                template=template.id,
            )
        )
    for request in requests:
        try:
            await model.predict(request)
        except StepError as exc:
            failures.append(str(exc).splitlines()[0])
    try:
        await client.models()
    except StepError as exc:
        failures.append(str(exc).splitlines()[0])
    return len(requests) + 1, failures


async def check_openai(app_dir: Path, partner: PartnerContract) -> CheckResult:
    """Make Sluice's model client's calls against the partner's mock."""
    started = time.perf_counter()
    mock = Mock(partner.spec)
    labels = read_labels(partner.labels)
    async with AsgiServer(mock.app) as server:
        settings = ClientSettings(server.url + partner.spec.base_path, api_key="sk-contracts")
        async with OpenAIClient(settings, policy=EgressPolicy.loopback()) as client:
            model = ChatModel(client, name=f"contracts-{partner.name}", labels=labels)
            made, failures = await _calls(model, client, app_dir, labels)
    records = mock.records()
    passed = len(records) == made and all(r.valid for r in records)
    message = _summary(partner.name, partner, records, "") + f"; {made} calls made"
    shown = _problems(records)
    if len(records) != made:
        shown.insert(0, f"{made} calls made but the mock saw {len(records)}")
    if shown:
        message += f"; first problem: {shown[0]}"
    figures = {
        "calls": made,
        "requests": len(records),
        "valid": sum(r.valid for r in records),
        "answers_refused_by_client": len(failures),
    }
    return CheckResult(
        f"consumer:{partner.name}",
        passed,
        message,
        figures,
        (*shown, *failures[:2]),
        time.perf_counter() - started,
    )


async def check_partner(
    app_dir: Path,
    partner: PartnerContract,
    *,
    events: int = 5,
    environ: Mapping[str, str] | None = None,
) -> CheckResult:
    """The consumer check of one partner, by its client."""
    if partner.client == "webhook":
        return await check_webhook(app_dir, partner, events=events, environ=environ)
    return await check_openai(app_dir, partner)
