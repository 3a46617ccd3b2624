"""What the request rules cost on the AI gateway's path, beside parsing alone, in one run.

A typical chat body (a system and a user message) is parsed with ``orjson.loads`` (the
baseline), read with ``read_json`` (parse plus the depth and field walk), and checked by
``parse_body`` (everything the gateway checks of a body); the header rule (``check_single``)
runs over the headers an OpenAI client sends. Rounds alternate; the medians in microseconds
per call are printed, then one JSON object.

    .venv/bin/python bench/request_rules.py [--calls 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import timeit
from collections.abc import Callable

import orjson

from sluice.ai_gateway.proxy import SHAPE, parse_body
from sluice.ingress.limits import check_single, read_json

BODY = orjson.dumps(
    {
        "model": "chat",
        "messages": [
            {"role": "system", "content": "You triage bank support tickets."},
            {
                "role": "user",
                "content": "I still have not received my new card, when will it arrive?",
            },
        ],
        "max_tokens": 64,
        "temperature": 0,
    }
)
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"AsyncOpenAI/Python 1.0"),
    (b"authorization", b"Bearer sk_0123456789ab_secret"),
    (b"content-length", str(len(BODY)).encode()),
]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cases: dict[str, Callable[[], object]] = {
        "orjson_loads": lambda: orjson.loads(BODY),
        "read_json": lambda: read_json(BODY, SHAPE),
        "parse_body": lambda: parse_body(BODY),
        "check_single": lambda: check_single(HEADERS),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, call in cases.items():
            seconds = timeit.timeit(call, number=args.calls)
            samples[name].append(seconds / args.calls * 1e6)
    medians = {name: round(statistics.median(values), 3) for name, values in samples.items()}
    for name, us in medians.items():
        print(f"{name:>14}: {us:8.3f} us/call")
    shape = medians["read_json"] - medians["orjson_loads"]
    print(f"the shape walk adds {shape:.3f} us to a parse of {medians['orjson_loads']:.3f} us")
    print(json.dumps({"us_per_call": medians, "shape_walk_us": round(shape, 3)}))


if __name__ == "__main__":
    main()
