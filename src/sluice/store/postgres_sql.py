"""The SQL of the PostgreSQL store, one statement per operation.

Leases and heartbeats are compared on the database clock (``NOW``), so workers on several
hosts agree on when a lease expired even if their own clocks drift. Batched writes take one
array per column and ``unnest`` them, so a batch of any size is one prepared statement and one
round trip. Statements that make a job ready notify the work channel (``$N`` bound, one
notification per pool); PostgreSQL delivers it at commit and folds duplicates.
"""

from __future__ import annotations

from sluice.store.base import EVENT_COLUMNS  # the order event_from_row reads

NOW = "extract(epoch from now())::float8"

JOB_COLUMNS = (
    "id, event_id, step, pool, workflow, version, tenant, attempts, input, ready_at, deadline,"
    " trace, flag"
)

# $1..$10: id, workflow, version, tenant, input, created_at, deadline, first_pool, original,
# trace; $11: channel; $12: flag.
INSERT_EVENTS = """
WITH t AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[],
                         $6::float8[], $7::float8[], $8::text[], $9::bytea[], $10::text[],
                         $12::text[])
        AS t(id, workflow, version, tenant, input, created_at, deadline, pool, original, trace,
             flag)
), e AS (
    INSERT INTO events(id, workflow, version, tenant, state, input, created_at, deadline,
                       original, trace, flag)
    SELECT id, workflow, version, tenant, 'accepted', input, created_at, deadline, original,
           trace, flag
    FROM t
    RETURNING id
), j AS (
    INSERT INTO jobs(event_id, step, pool, workflow, version, tenant, state, input, ready_at,
                     run_at, deadline, trace, flag)
    SELECT id, 0, pool, workflow, version, tenant, 'ready', input, created_at, created_at,
           deadline, trace, flag FROM t
    RETURNING pool
)
SELECT pool FROM j
UNION ALL
SELECT NULL FROM (SELECT pg_notify($11, p) FROM (SELECT DISTINCT pool AS p FROM j) d) n
"""

CLAIM = f"""
UPDATE jobs j SET state = 'leased', owner = $1, lease_until = {NOW} + $2,
                  attempts = j.attempts + 1
FROM (SELECT id FROM jobs WHERE pool = $3 AND state = 'ready' AND run_at <= {NOW}
      ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED) c
WHERE j.id = c.id
RETURNING j.id, j.event_id, j.step, j.pool, j.workflow, j.version, j.tenant, j.attempts,
          j.input, j.ready_at, j.deadline, j.trace, j.flag
"""

# One row per completion: the step result goes in unless one exists (a re-run). Only the
# completions whose result went in delete their job unconditionally, write the next job or
# finish the event; a re-run deletes its job only if it still holds the lease.
COMPLETE = """
WITH c AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::int[],
                         $6::float8[], $7::float8[], $8::float8[], $9::bytea[], $10::text[],
                         $11::text[], $12::text[], $13::text[], $14::text[], $15::float8[],
                         $17::text[], $18::text[])
        AS c(job_id, event_id, step, name, attempts, queued_at, started_at, finished_at,
             output, next_pool, owner, workflow, version, tenant, deadline, trace, flag)
), r AS (
    INSERT INTO step_results(event_id, step, name, attempts, queued_at, started_at,
                             finished_at, output)
    SELECT event_id, step, name, attempts, queued_at, started_at, finished_at, output
    FROM c ORDER BY event_id, step
    ON CONFLICT DO NOTHING
    RETURNING event_id, step
), w AS (
    SELECT c.* FROM c JOIN r USING (event_id, step)
), d AS (
    DELETE FROM jobs j USING c
    WHERE j.id = c.job_id AND (j.owner = c.owner OR EXISTS (
        SELECT 1 FROM r WHERE r.event_id = c.event_id AND r.step = c.step))
), n AS (
    INSERT INTO jobs(event_id, step, pool, workflow, version, tenant, state, input, ready_at,
                     run_at, deadline, trace, flag)
    SELECT event_id, step + 1, next_pool, workflow, version, tenant, 'ready', output,
           finished_at, finished_at, deadline, trace, flag
    FROM w WHERE next_pool IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING pool
), e AS (
    UPDATE events SET state = 'done', result = w.output, finished_at = w.finished_at
    FROM w WHERE events.id = w.event_id AND w.next_pool IS NULL
)
SELECT 'r' AS kind, event_id AS name, step FROM r
UNION ALL
SELECT 'n', pool, 0 FROM n
UNION ALL
SELECT 'x', NULL, 0 FROM (SELECT pg_notify($16, p) FROM (SELECT DISTINCT pool AS p FROM n) d) x
"""

RETRY = """
UPDATE jobs SET state = 'ready', owner = NULL, lease_until = NULL, run_at = $1, ready_at = $1,
                last_error = $2
WHERE id = $3 AND owner = $4 AND state = 'leased'
RETURNING pool
"""

BURY = f"""
WITH j AS (
    UPDATE jobs SET state = 'dead', owner = NULL, lease_until = NULL, last_error = $1
    WHERE id = $2 AND owner = $3 AND state = 'leased'
    RETURNING event_id
)
UPDATE events SET state = 'dead', error = $1, finished_at = {NOW}
FROM j WHERE events.id = j.event_id
"""

HEARTBEAT = f"""
INSERT INTO owners(owner, beat_at) VALUES ($1, {NOW})
ON CONFLICT (owner) DO UPDATE SET beat_at = excluded.beat_at
"""

RELEASE = """
WITH j AS (
    UPDATE jobs SET state = 'ready', owner = NULL, lease_until = NULL,
                    attempts = greatest(attempts - 1, 0)
    WHERE state = 'leased' AND owner = $1
    RETURNING pool
), o AS (
    DELETE FROM owners WHERE owner = $1
)
SELECT pool FROM j
"""

RECLAIM = f"""
WITH n AS (SELECT {NOW} AS now), j AS (
    UPDATE jobs SET state = 'ready', owner = NULL, lease_until = NULL, run_at = n.now
    FROM n
    WHERE jobs.state = 'leased' AND (jobs.lease_until < n.now OR jobs.owner NOT IN (
        SELECT o.owner FROM owners o WHERE o.beat_at >= n.now - $1))
    RETURNING jobs.pool
), o AS (
    DELETE FROM owners USING n WHERE owners.beat_at < n.now - 10 * $1
)
SELECT pool FROM j
"""

REPLAY = f"""
WITH n AS (SELECT {NOW} AS now), j AS (
    UPDATE jobs SET state = 'ready', attempts = 0, run_at = n.now, ready_at = n.now,
                    deadline = $1, last_error = NULL
    FROM n WHERE jobs.event_id = $2 AND jobs.state = 'dead'
    RETURNING jobs.pool
), e AS (
    UPDATE events SET state = 'accepted', error = NULL, finished_at = NULL, deadline = $1
    WHERE id = $2 AND EXISTS (SELECT 1 FROM j)
)
SELECT pool FROM j
"""

NOTIFY = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"

GET_EVENT = f"SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"
GET_STEPS = (
    "SELECT step, name, attempts, queued_at, started_at, finished_at, output"
    " FROM step_results WHERE event_id = $1 ORDER BY step"
)
EVENT_STATES = "SELECT id, state FROM events WHERE id = ANY($1::text[])"
QUEUE_DEPTHS = "SELECT pool, count(*) FROM jobs WHERE state = 'ready' GROUP BY pool"
