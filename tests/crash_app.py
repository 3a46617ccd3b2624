"""The app both crash tests run (SQLite serve and PostgreSQL workers): three pools, a sink
step that logs every execution with one atomic append, so re-runs can be counted."""

CONFIG = """
pools:
  ingest: {concurrency: 16, queue_limit: 100000}
  work: {concurrency: 16, queue_limit: 100000}
  sink: {concurrency: 8, queue_limit: 100000}
runtime: {heartbeat_ms: 200, poll_ms: 20}
"""
# %s: the path of the sink's execution log.
WORKFLOW = """
name: crash
budget_ms: 600000
input_schema: {type: object, required: [n]}
steps:
  - {name: ingest, pool: ingest, uses: noop}
  - {name: work, pool: work, uses: sleep, options: {ms: 2}}
  - {name: sink, pool: sink, uses: "crash_steps:sink", options: {log: "%s"}}
"""
STEPS = '''
import os

async def sink(ctx, data):
    """Log every execution (at least once) with one atomic append."""
    fd = os.open(ctx.options["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.event_id}\\n".encode())
    finally:
        os.close(fd)
    return {"n": data["n"], "sunk": True}
'''
