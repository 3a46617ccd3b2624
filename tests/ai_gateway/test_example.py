"""The example gateway app (``examples/gateway``) serves the official client as its README says."""

from __future__ import annotations

from pathlib import Path

from sluice.drills.simulator import SimulatorSettings
from tests.ai_gateway.conftest import StackFactory, sim_stats
from tests.ai_gateway.test_chat import ask

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway" / "sluice.yaml"


async def test_the_example_app_answers_and_falls_back(make_stack: StackFactory) -> None:
    """With its primary failing, the example still answers (from the backup), plain and
    streamed, and a repeated question is a cache hit."""
    text = EXAMPLE.read_text().replace("{", "{{").replace("}", "}}")
    config = text.replace("127.0.0.1:8900", "127.0.0.1:{primary}")
    config = config.replace("127.0.0.1:8901", "127.0.0.1:{backup}")
    stack = await make_stack(primary=SimulatorSettings(error_rate=1.0), config=config)
    async with stack.client("acme") as client:
        first = await client.chat.completions.with_raw_response.create(model="chat", messages=ask())
        again = await client.chat.completions.with_raw_response.create(model="chat", messages=ask())
        stream = await client.chat.completions.create(
            model="chat", messages=ask("where is my card?"), stream=True
        )
        chunks = [c async for c in stream]
    assert first.headers["x-sluice-deployment"] == "backup"
    assert again.headers["x-sluice-cache"] == "hit"
    assert "".join(c.choices[0].delta.content or "" for c in chunks).startswith('{"label"')
    assert (await sim_stats(stack.backup))["requests"] == 2
