"""Benchmark of retrieval on BANKING77: top-k latency, cold vs warm first query, embed rate.

Items are the 10,003 real BANKING77 texts (train + validation + replay splits of the triage
app); the 20k index adds a perturbed copy of each vector (Gaussian noise, re-normalized), so it
keeps the real data's geometry. Queries are 200 validation texts, embedded once beforehand, so
top-k figures time the search alone. Baselines measured in the same run on the same vectors:
scikit-learn ``NearestNeighbors(algorithm="brute", metric="cosine")`` one query at a time, and
a pure-Python dot-product loop for a few queries. First-query latency (embed + search) is
measured in fresh subprocesses that load the saved index, with and without ``warm_up``.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python bench/retrieval.py [--embedders wordllama,minilm]``
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from sklearn.neighbors import NearestNeighbors

from sluice.models.metrics import percentile
from sluice.models.splits import read_examples
from sluice.retrieval import (
    IndexItem,
    VectorIndex,
    embedder_for,
    load_index,
    save_index,
    warm_up,
)

DATA = Path(__file__).resolve().parent.parent / "examples" / "triage" / "data"
K = 5


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded for the report."""
    return round(seconds * 1000, 3)


def latencies(fn: Any, queries: np.ndarray) -> dict[str, float]:
    """p50/p99 of ``fn(q)`` over the query rows (after 10 untimed calls)."""
    for q in queries[:10]:
        fn(q)
    times = []
    for q in queries:
        started = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - started)
    return {"p50_ms": ms(percentile(times, 50)), "p99_ms": ms(percentile(times, 99))}


def python_loop_top_k(rows: list[list[float]], q: list[float]) -> list[int]:
    """The no-numpy baseline: a dot product per row in pure Python, then a sort."""
    scores = [sum(a * b for a, b in zip(row, q, strict=True)) for row in rows]
    return sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:K]


def embed_rate(kind: str, texts: list[str], batch: int) -> float:
    """Texts per second embedding ``texts`` in batches (model already loaded)."""
    embedder = embedder_for(kind)
    embedder.embed(texts[:batch])
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        embedder.embed(texts[start : start + batch])
    return round(len(texts) / (time.perf_counter() - started), 1)


def child(mode: str, kind: str, path: str, texts: list[str]) -> dict[str, float]:
    """In a fresh process: load the index, optionally warm up, time the first queries.

    ``mode`` is ``cold`` or ``warm``, optionally suffixed ``-t1`` to run torch on one thread.
    """
    if mode.endswith("-t1"):
        import torch

        torch.set_num_threads(1)
    started = time.perf_counter()
    index = load_index(Path(path), embedder_for(kind))
    loaded = time.perf_counter()
    warm_ms = 0.0
    if mode.startswith("warm"):
        warm_up(index)
        warm_ms = ms(time.perf_counter() - loaded)
    times = []
    for text in texts:
        t0 = time.perf_counter()
        index.search(text, K)
        times.append(time.perf_counter() - t0)
    return {
        "load_ms": ms(loaded - started),
        "warm_up_ms": warm_ms,
        "first_query_ms": ms(times[0]),
        "second_query_ms": ms(times[1]),
        "hundredth_query_ms": ms(times[99]),
        "median_query_ms": ms(percentile(times, 50)),
    }


def first_query(kind: str, path: Path, mode: str) -> dict[str, float]:
    """Run :func:`child` in a subprocess and return its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, kind, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench_embedder(
    kind: str, texts: list[str], queries: list[str], workdir: Path
) -> dict[str, Any]:
    """Every figure for one embedder."""
    embedder = embedder_for(kind)
    started = time.perf_counter()
    vectors = embedder.embed(texts[:64])
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    vectors = np.concatenate(
        [embedder.embed(texts[s : s + 256]) for s in range(0, len(texts), 256)]
    )
    build_rate = len(texts) / (time.perf_counter() - started)
    qv = embedder.embed(queries)
    rng = np.random.default_rng(77)
    report: dict[str, Any] = {
        "dim": embedder.dim,
        "model_load_s": round(load_s, 2),
        "build_texts_per_s": round(build_rate, 1),
    }
    sample = texts[:2048] if not embedder.slow else texts[:512]
    report["embed_texts_per_s"] = {
        f"batch_{b}": embed_rate(kind, sample, b) for b in (1, 64, 256) if b <= len(sample)
    }
    for size in (10_000, 20_000):
        if size <= len(vectors):
            matrix = vectors[:size]
        else:
            noise = rng.normal(scale=0.02, size=vectors.shape).astype(np.float32)
            extra = vectors + noise
            extra /= np.linalg.norm(extra, axis=1, keepdims=True)
            matrix = np.concatenate([vectors, extra])[:size]
        items = [IndexItem(f"r{n}", "") for n in range(len(matrix))]
        index = VectorIndex(embedder, max_items=size)
        index.add(items, matrix)
        ours = latencies(lambda q, index=index: index.search_vector(q, K), qv)
        index.blas_threads = None
        blas_default = latencies(lambda q, index=index: index.search_vector(q, K), qv)
        index.blas_threads = 1
        batch_start = time.perf_counter()
        batch = index.search_vectors(qv, K)
        batch_ms = ms((time.perf_counter() - batch_start) / len(qv))
        reference = NearestNeighbors(n_neighbors=K, algorithm="brute", metric="cosine").fit(matrix)
        sk = latencies(lambda q, ref=reference: ref.kneighbors(q.reshape(1, -1)), qv)
        distances, want = reference.kneighbors(qv)
        # Duplicate texts give tied scores whose order is arbitrary: compare scores, and ids
        # where no tie exists.
        got_scores = np.array([[n.score for n in row] for row in batch])
        exact = bool(np.allclose(got_scores, 1 - distances, atol=1e-5))
        same_ids = float(
            np.mean(
                [
                    [int(n.item.id[1:]) for n in got] == list(w)
                    for got, w in zip(batch, want, strict=True)
                ]
            )
        )
        rows = matrix.tolist()
        loop_times = []
        for q in qv[:3]:
            t0 = time.perf_counter()
            python_loop_top_k(rows, q.tolist())
            loop_times.append(time.perf_counter() - t0)
        report[f"items_{size}"] = {
            "search": ours,
            "search_blas_default_threads": blas_default,
            "search_batched_per_query_ms": batch_ms,
            "same_scores_as_sklearn": exact,
            "same_ids_as_sklearn_fraction": same_ids,
            "baseline_sklearn_brute": sk,
            "baseline_python_loop_ms": ms(float(np.median(loop_times))),
        }
    real = VectorIndex(embedder, name="bench")
    real.add([IndexItem(f"r{n}", t) for n, t in enumerate(texts)], vectors)
    path = save_index(real, workdir / kind)
    report["index_on_disk_mb"] = round(sum(p.stat().st_size for p in path.iterdir()) / 1e6, 1)
    report["cold"] = first_query(kind, path, "cold")
    report["warm"] = first_query(kind, path, "warm")
    if embedder.slow:
        # Torch's intra-op threads stall on a busy machine like BLAS's do: measure one thread.
        report["cold_torch_1_thread"] = first_query(kind, path, "cold-t1")
        report["warm_torch_1_thread"] = first_query(kind, path, "warm-t1")
    return report


def main() -> None:
    """Run the benchmark and print a readable summary, then one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedders", default="wordllama,minilm")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "KIND", "PATH"))
    args = parser.parse_args()
    validation = [e.text for e in read_examples(DATA / "validation.csv")]
    queries = validation[::7][:200]
    if args.child:
        mode, kind, path = args.child
        print(json.dumps(child(mode, kind, path, queries[:100])))
        return
    texts = [
        e.text
        for split in ("train", "validation", "replay")
        for e in read_examples(DATA / f"{split}.csv")
    ]
    results: dict[str, Any] = {"items_real": len(texts), "queries": len(queries), "k": K}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.embedders.split(","):
            print(f"-- {kind}", file=sys.stderr)
            results[kind] = bench_embedder(kind, texts, queries, Path(tmp))
            summary = results[kind]
            for size in ("items_10000", "items_20000"):
                row = summary[size]
                print(
                    f"{kind} {size}: search p50 {row['search']['p50_ms']} ms "
                    f"p99 {row['search']['p99_ms']} ms | sklearn brute p50 "
                    f"{row['baseline_sklearn_brute']['p50_ms']} ms | python loop "
                    f"{row['baseline_python_loop_ms']} ms | BLAS default threads p50 "
                    f"{row['search_blas_default_threads']['p50_ms']} ms p99 "
                    f"{row['search_blas_default_threads']['p99_ms']} ms | "
                    f"exact={row['same_scores_as_sklearn']}"
                )
            print(
                f"{kind} first query: cold {summary['cold']['first_query_ms']} ms, after warm-up "
                f"{summary['warm']['first_query_ms']} ms (100th: "
                f"{summary['warm']['hundredth_query_ms']} ms); embed "
                f"{summary['embed_texts_per_s']} texts/s"
            )
            if "warm_torch_1_thread" in summary:
                print(
                    f"{kind} torch on 1 thread: first query cold "
                    f"{summary['cold_torch_1_thread']['first_query_ms']} ms, after warm-up "
                    f"{summary['warm_torch_1_thread']['first_query_ms']} ms, median "
                    f"{summary['warm_torch_1_thread']['median_query_ms']} ms"
                )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
