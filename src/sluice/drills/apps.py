"""Variants of the triage app written into a directory, for benchmarks and drills.

Each function writes a complete app (``sluice.yaml`` and ``workflows/``) built from a source
triage app (``examples/triage`` by default) and returns its directory. The data, the trained
model artifacts and the retrieval indexes (under ``.sluice/``) are linked, not copied; the
knowledge base, the routing rules and the app's step module are copied (the files service
reads only inside the app directory).
Artifacts are content-addressed by their training data and parameters, so a variant reuses the
source app's trained models and index and nothing is retrained; the variant's store is its own
(``.sluice/triage.db`` inside ``dest``).

Both variants add a chat model named ``llm`` (``kind: openai``) at ``llm_base_url``: the model
simulator (``sluice simulate-model``) or any OpenAI-compatible endpoint. It is priced from
``prices:`` per token, the local models keep the source app's price per call.

- :func:`llm_triage_app`: the triage workflow as Sluice means it to run: isolated pools, the
  caches on, a three-tier cascade ``small -> large -> llm`` (the LLM only for what the large
  model is unsure of), the reliability machinery (breakers, retry budget, fallback) and,
  optionally, an SLO guard.
- :func:`naive_triage_app`: the same steps the way a first version is built: one shared pool
  for every step, every ticket to the LLM, no caches, no breakers: a failed LLM call fails
  the step and the executor's plain retries apply.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sluice.errors import ConfigError
from sluice.examples import example_dir, working_copy
from sluice.outbound.policy import LOOPBACK

#: The reference triage app: the repository's in a source checkout, else a copy of the packaged
#: example in the user's cache directory (the drills train and index into it).
EXAMPLE_TRIAGE = example_dir("triage")

#: Per-token list prices of a small hosted chat model (USD per 1,000 tokens, as published
#: for gpt-4o-mini): what a call of the ``llm`` tier costs unless the caller says otherwise.
LLM_PRICES: Mapping[str, float] = {"input_per_1k": 0.00015, "output_per_1k": 0.0006}

LLM_MODEL = "llm"
#: The model group the triage draft step asks (``model_groups:``); ``llm_draft`` fills it.
DRAFT_GROUP = "drafter"
#: The draft step's budget with ``llm_draft``: a generation, and one repair, take longer.
LLM_DRAFT_BUDGET_MS = 15_000
_WORKFLOW_FILE = "triage.yaml"
# Linked into every variant: read in place, never written by a variant.
_SHARED = ("data",)
# Copied: the files service reads app files only inside the app directory (a link out of it
# is refused), and they are small.
_COPIED = ("kb", "routing.yaml", "prompts")
# Under .sluice/: trained artifacts and built indexes, shared so nothing is rebuilt.
_SHARED_STATE = ("models", "indexes")


def llm_triage_app(
    dest: Path,
    llm_base_url: str,
    *,
    source: Path | None = None,
    llm_threshold: float = 0.5,
    local_tiers: int | None = None,
    llm_prices: Mapping[str, float] = LLM_PRICES,
    llm_timeout_s: float = 10.0,
    llm_max_connections: int = 64,
    slo: Mapping[str, Any] | None = None,
    guard_tiers: bool = True,
    caches: bool = True,
    llm_draft: bool = False,
) -> Path:
    """Write the triage app with the LLM as the cascade's last tier into ``dest``.

    The classify step's cascade becomes ``source's tiers -> llm``: the last local tier kept
    (``large``) gets ``llm_threshold`` (its answers below it go to the LLM); the other tiers
    keep their thresholds. ``local_tiers`` keeps only the source's first N tiers (``1``:
    ``small -> llm``; with ``llm_threshold=1.0`` every ticket wants the LLM, as a drill
    needs). Pools, caches and every other step are the source's.

    ``slo`` adds the workflow's ``slo:`` section (e.g. ``{"p95_ms": 300, "error_rate": 0.01,
    "window_s": 30, "policy": "degrade"}``); ``guard_tiers=False`` calls the costly tiers bare
    (``reliability.guard_tiers: false``); ``caches=False`` removes the ``caches:`` section.
    ``llm_draft=True`` puts the LLM in the ``drafter`` model group, so the ``draft`` step
    (a ``generate`` step on the ``draft_reply`` template) has it write the reply (the local
    knowledge-base draft stays its fallback); the simulator then plays a generative model
    (``--mode generate``). Returns ``dest``.
    """
    if not 0.0 <= llm_threshold <= 1.0:
        raise ConfigError(f"llm_threshold must be within 0..1, got {llm_threshold!r}")
    llm = llm_entry(llm_base_url, llm_timeout_s, llm_max_connections)
    source = working_copy("triage") if source is None else source
    config, flow = _load(source)
    link_shared(dest, source)
    config["models"][LLM_MODEL] = llm
    config["prices"] = {**config.get("prices", {}), LLM_MODEL: dict(llm_prices)}
    config["reliability"] = {"guard_tiers": guard_tiers}
    if not caches:
        config.pop("caches", None)
    classify = _classify_step(flow, source)
    cascade = [dict(tier) for tier in classify["options"]["cascade"]]
    if local_tiers is not None:
        if not 1 <= local_tiers <= len(cascade):
            raise ConfigError(f"local_tiers must be within 1..{len(cascade)}, got {local_tiers}")
        cascade = cascade[:local_tiers]
    cascade[-1]["threshold"] = llm_threshold
    cascade.append({"model": LLM_MODEL})
    classify["options"] = {**classify["options"], "cascade": cascade}
    if slo is not None:
        flow["slo"] = dict(slo)
    if llm_draft:
        draft = _draft_step(flow, source)
        groups = config.get("model_groups") or {}
        config["model_groups"] = {**groups, DRAFT_GROUP: [LLM_MODEL]}
        draft["budget_ms"] = max(int(draft.get("budget_ms", 0)), LLM_DRAFT_BUDGET_MS)
    return _write(dest, config, flow)


def naive_triage_app(
    dest: Path,
    llm_base_url: str,
    *,
    source: Path | None = None,
    concurrency: int = 32,
    queue_limit: int = 2500,
    retries: int = 3,
    llm_prices: Mapping[str, float] = LLM_PRICES,
    llm_timeout_s: float = 10.0,
    llm_max_connections: int = 64,
) -> Path:
    """Write the naive triage app into ``dest``: one shared pool, every ticket to the LLM.

    Every step runs in one pool named ``shared`` (``concurrency`` workers, ``queue_limit``
    queued jobs), so slow LLM calls hold the workers the quick steps need. The classify
    step's cascade is the LLM alone, with ``retries`` plain retries (full-jitter backoff,
    never sooner than a 429's ``Retry-After``). No ``caches:``, no ``spend:``, no ``slo:``,
    and ``reliability.guard_tiers: false``. The only model is the LLM (the retrieval index
    embeds with its own embedder). Returns ``dest``.
    """
    if concurrency < 1 or queue_limit < 1 or retries < 0:
        raise ConfigError(
            "naive app: concurrency and queue_limit must be at least 1, retries at least 0",
            [f"concurrency={concurrency}", f"queue_limit={queue_limit}", f"retries={retries}"],
        )
    llm = llm_entry(llm_base_url, llm_timeout_s, llm_max_connections)
    source = working_copy("triage") if source is None else source
    config, flow = _load(source)
    link_shared(dest, source)
    config["pools"] = {"shared": {"concurrency": concurrency, "queue_limit": queue_limit}}
    config["models"] = {LLM_MODEL: llm}
    config["prices"] = {LLM_MODEL: dict(llm_prices)}
    config["reliability"] = {"guard_tiers": False}
    config.pop("caches", None)
    config.pop("spend", None)  # no spend budgets either: nothing degrades to a cheaper answer
    classify = _classify_step(flow, source)
    classify["options"] = {**classify["options"], "cascade": [{"model": LLM_MODEL}]}
    classify["retries"] = retries
    for step in flow["steps"]:
        step["pool"] = "shared"
    flow.pop("slo", None)
    return _write(dest, config, flow)


def llm_entry(base_url: str, timeout_s: float, max_connections: int) -> dict[str, Any]:
    """The ``kind: openai`` entry of the ``llm`` tier, labels taken from the training CSV."""
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"llm_base_url must be an http(s) URL, got {base_url!r}")
    return {
        "kind": "openai",
        "base_url": base_url,
        "model": LLM_MODEL,
        "labels": "data/train.csv",
        "timeout_s": timeout_s,
        "max_connections": max_connections,
        "params": {"temperature": 0, "max_tokens": 64},
    }


def _load(source: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The source app's config and triage workflow, as plain data to rewrite."""
    config_path = source / "sluice.yaml"
    flow_path = source / "workflows" / _WORKFLOW_FILE
    for path in (config_path, flow_path):
        if not path.is_file():
            raise ConfigError(f"{source}: not a triage app ({path.name} is missing)")
    config = yaml.safe_load(config_path.read_text())
    flow = yaml.safe_load(flow_path.read_text())
    if not isinstance(config, dict) or not isinstance(config.get("models"), dict):
        raise ConfigError(f"{config_path}: a triage app defines its models: section")
    config["store"] = "sqlite:///.sluice/triage.db"  # the variant's own store, in dest
    return config, flow


def _draft_step(flow: dict[str, Any], source: Path) -> dict[str, Any]:
    """The workflow's draft step."""
    for step in flow.get("steps", []):
        if step.get("name") == "draft":
            found: dict[str, Any] = step  # edited in place: it belongs to ``flow``
            return found
    raise ConfigError(f"{source}: the triage workflow has no draft step")


def _classify_step(flow: dict[str, Any], source: Path) -> dict[str, Any]:
    """The workflow's classify step (the one with a cascade)."""
    for step in flow.get("steps", []):
        if step.get("uses") == "classify" and (step.get("options") or {}).get("cascade"):
            found: dict[str, Any] = step  # edited in place: it belongs to ``flow``
            return found
    raise ConfigError(f"{source}: the triage workflow has no classify step with a cascade")


def link_shared(dest: Path, source: Path) -> None:
    """Link the source's read-only files and its trained state into ``dest``."""
    source = source.resolve()
    (dest / "workflows").mkdir(parents=True, exist_ok=True)
    for name in _SHARED:
        _link(dest / name, source / name)
    for name in _COPIED:
        if (source / name).is_dir():
            shutil.copytree(source / name, dest / name, dirs_exist_ok=True)
        elif (source / name).is_file():
            shutil.copyfile(source / name, dest / name)
    for module in sorted((source / "workflows").glob("*.py")):
        shutil.copyfile(module, dest / "workflows" / module.name)
    (dest / ".sluice").mkdir(exist_ok=True)
    for name in _SHARED_STATE:
        # Created in the source if missing, so what a variant trains is kept for the next.
        (source / ".sluice" / name).mkdir(parents=True, exist_ok=True)
        _link(dest / ".sluice" / name, source / ".sluice" / name)


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        return
    if target.exists():
        link.symlink_to(target)


def local_outbound(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``outbound.allow_private`` set to this machine's loopback addresses:
    the simulated model runs here, and the egress policy refuses loopback unless told."""
    outbound = dict(config.get("outbound") or {})
    outbound["allow_private"] = sorted({*outbound.get("allow_private", []), *LOOPBACK})
    return {**config, "outbound": outbound}


def _write(dest: Path, config: dict[str, Any], flow: dict[str, Any]) -> Path:
    config = local_outbound(config)
    (dest / "sluice.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (dest / "workflows" / _WORKFLOW_FILE).write_text(yaml.safe_dump(flow, sort_keys=False))
    return dest
