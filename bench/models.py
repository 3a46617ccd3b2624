"""Benchmark of the triage models on the BANKING77 validation split.

Trains (or reuses) the small and large local models of ``examples/triage`` on the train split,
tunes the cascade thresholds on the replay split (never on the rows that report accuracy;
stable tuning, see :func:`sluice.models.tuning.tune_thresholds`),
then measures on the validation split: accuracy and macro-F1 of each tier and of the cascade,
escalation rate, calibration error, per-ticket latency of the small path and p50/p95 of the
full classification. Baseline, measured in the same run: plain MiniLM embeddings + logistic
regression (the published ~93% recipe).

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python bench/models.py [--target 0.935] [--max-escalation 0.25]``
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sluice.models.base import ModelRequest
from sluice.models.calibration import expected_calibration_error, softmax
from sluice.models.cascade import Cascade, Tier
from sluice.models.features import set_encoder_threads
from sluice.models.local import LocalClassifier
from sluice.models.metrics import accuracy, macro_f1, percentile
from sluice.models.registry import build_local
from sluice.models.splits import read_examples
from sluice.models.tuning import TierOutcomes, evaluate_thresholds, tune_thresholds

APP_DIR = Path(__file__).resolve().parent.parent / "examples" / "triage"
MODELS: dict[str, dict[str, Any]] = {
    "small": {"kind": "wordllama", "train": "data/train.csv", "price_per_call": 0.00001},
    "large": {"kind": "stacked", "train": "data/train.csv", "price_per_call": 0.0002},
}


def outcomes(model: LocalClassifier, texts: list[str], price: float) -> TierOutcomes:
    """One pass of a model over texts, as the tuner consumes it."""
    predictions = model.predict_batch(texts)
    return TierOutcomes(
        name=model.name,
        labels=[p.label for p in predictions],
        confidences=[p.confidence for p in predictions],
        cost_per_call=price,
    )


def tier_report(model: LocalClassifier, out: TierOutcomes, gold: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and calibration of one tier on the validation split."""
    correct = [p == g for p, g in zip(out.labels, gold, strict=True)]
    return {
        "accuracy": round(accuracy(out.labels, gold) * 100, 2),
        "macro_f1": round(macro_f1(out.labels, gold) * 100, 2),
        "ece": round(expected_calibration_error(out.confidences, correct), 4),
        "temperature": round(model.temperature, 4),
        "train_seconds": model.meta.get("train_seconds"),
    }


def raw_ece(model: LocalClassifier, texts: list[str], gold: list[str]) -> float:
    """Calibration error of the same head without temperature scaling (T = 1)."""
    probs = softmax(model.scores(texts), 1.0)
    labels = [model.labels[i] for i in probs.argmax(axis=1)]
    correct = [p == g for p, g in zip(labels, gold, strict=True)]
    return round(expected_calibration_error(list(probs.max(axis=1)), correct), 4)


async def small_latency(model: LocalClassifier, texts: list[str]) -> dict[str, float]:
    """Per-ticket latency of the small model, one ticket at a time through ``predict``."""
    times = []
    for text in texts:
        started = time.perf_counter()
        await model.predict(ModelRequest(text))
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    model.predict_batch(texts)
    batch_ms = (time.perf_counter() - started) * 1000 / len(texts)
    return {
        "mean_ms": round(sum(times) / len(times), 4),
        "p50_ms": round(percentile(times, 50), 4),
        "p95_ms": round(percentile(times, 95), 4),
        "batch_ms_per_ticket": round(batch_ms, 4),
    }


async def cascade_latency(cascade: Cascade, texts: list[str]) -> dict[str, Any]:
    """Full classification through the cascade, one ticket at a time."""
    times = []
    escalated_times = []
    for text in texts:
        outcome = await cascade.run(ModelRequest(text))
        times.append(outcome.latency_ms)
        if outcome.escalated:
            escalated_times.append(outcome.latency_ms)
    escalated = len(escalated_times)
    return {
        "escalated_p50_ms": round(percentile(escalated_times, 50), 3) if escalated else None,
        "escalated_p95_ms": round(percentile(escalated_times, 95), 3) if escalated else None,
        "p50_ms": round(percentile(times, 50), 3),
        "p95_ms": round(percentile(times, 95), 3),
        "p99_ms": round(percentile(times, 99), 3),
        "escalation_rate": round(escalated / len(texts), 4),
    }


def baseline(train: list[Any], texts: list[str], gold: list[str]) -> dict[str, Any]:
    """Plain MiniLM embeddings + logistic regression, trained and measured in this run."""
    from sklearn.linear_model import LogisticRegression

    from sluice.models.features import load_minilm

    encoder = load_minilm()
    started = time.perf_counter()
    x_train = encoder.encode([e.text for e in train], batch_size=64, show_progress_bar=False)
    head = LogisticRegression(C=10, max_iter=3000)
    head.fit(x_train, [e.label for e in train])
    train_seconds = time.perf_counter() - started
    predicted = list(head.predict(encoder.encode(texts, batch_size=64, show_progress_bar=False)))
    one = []
    for text in texts[:300]:
        started = time.perf_counter()
        head.predict_proba(encoder.encode([text], show_progress_bar=False))
        one.append((time.perf_counter() - started) * 1000)
    return {
        "accuracy": round(accuracy(predicted, gold) * 100, 2),
        "macro_f1": round(macro_f1(predicted, gold) * 100, 2),
        "p50_ms": round(percentile(one, 50), 3),
        "p95_ms": round(percentile(one, 95), 3),
        "train_seconds": round(train_seconds, 1),
    }


def main() -> None:
    """Run the benchmark and print the figures, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.935)
    parser.add_argument("--max-escalation", type=float, default=0.25)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--encoder-threads", type=int, default=0, help="torch threads (0: torch's default)"
    )
    args = parser.parse_args()
    if args.encoder_threads:
        set_encoder_threads(args.encoder_threads)

    data = APP_DIR / "data"
    train = read_examples(data / "train.csv")
    validation = read_examples(data / "validation.csv")
    replay = read_examples(data / "replay.csv")
    val_texts, val_gold = [e.text for e in validation], [e.label for e in validation]
    rep_texts, rep_gold = [e.text for e in replay], [e.label for e in replay]
    print(f"train {len(train)}, validation {len(validation)}, replay {len(replay)} rows")

    models: dict[str, LocalClassifier] = {}
    for name, entry in MODELS.items():
        model = build_local(name, entry, APP_DIR, progress=print)
        assert isinstance(model, LocalClassifier)
        model.warm_up()
        models[name] = model
    prices = [float(entry["price_per_call"]) for entry in MODELS.values()]

    replay_out = [outcomes(m, rep_texts, p) for m, p in zip(models.values(), prices, strict=True)]
    plan = tune_thresholds(replay_out, rep_gold, args.target, max_escalation=args.max_escalation)
    print(
        f"tuned on replay: thresholds {plan.thresholds}, replay accuracy {plan.accuracy:.4f}, "
        f"escalation {plan.escalation_rate:.3f}, reached {plan.reached_target}"
    )

    val_out = [outcomes(m, val_texts, p) for m, p in zip(models.values(), prices, strict=True)]
    tiers = {
        name: {**tier_report(m, out, val_gold), "ece_uncalibrated": raw_ece(m, val_texts, val_gold)}
        for (name, m), out in zip(models.items(), val_out, strict=True)
    }
    on_val = evaluate_thresholds(val_out, val_gold, plan.thresholds)
    last = len(val_out) - 1
    cascade_labels = []
    for i in range(len(val_gold)):
        for t, out in enumerate(val_out):
            if t == last or out.confidences[i] >= plan.thresholds[t]:
                cascade_labels.append(out.labels[i])
                break
    for name, report in tiers.items():
        print(f"{name:>8}: {report}")

    small = models["small"]
    cascade = Cascade([Tier(small, plan.thresholds[0]), Tier(models["large"])])
    latency_small = asyncio.run(small_latency(small, val_texts))
    latency_full = asyncio.run(cascade_latency(cascade, val_texts))
    print(f"small path per ticket: {latency_small}")
    print(f"full classification: {latency_full}")
    result: dict[str, Any] = {
        "bench": "models",
        "rows": {"train": len(train), "validation": len(validation), "replay": len(replay)},
        "tiers": tiers,
        "cascade": {
            "thresholds": [round(t, 6) for t in plan.thresholds],
            "tuned_on": "replay",
            "target_accuracy": args.target,
            "accuracy": round(on_val.accuracy * 100, 2),
            "macro_f1": round(macro_f1(cascade_labels, val_gold) * 100, 2),
            "escalation_rate": round(on_val.escalation_rate, 4),
            "mean_cost_per_ticket": round(on_val.mean_cost, 8),
            "large_only_cost_per_ticket": prices[1],
        },
        "latency": {"small_path": latency_small, "full": latency_full},
        "cores": os.cpu_count(),
        "encoder_threads": args.encoder_threads or "default",
        # The machine is shared: the 1-minute load average says how contended the run was.
        "load_average": round(os.getloadavg()[0], 2),
    }
    if not args.skip_baseline:
        result["baseline_minilm_lr"] = baseline(train, val_texts, val_gold)
        print(f"baseline MiniLM+LR: {result['baseline_minilm_lr']}")
    print(f"cascade on validation: {result['cascade']}")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
