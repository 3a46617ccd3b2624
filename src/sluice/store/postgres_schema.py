"""PostgreSQL schema and migrations, applied in order and recorded in ``schema_version``.

Every table lives in one schema (``sluice`` unless the store URL names another with
``?schema=NAME``), so several apps, or several test runs, can share a database. Migrations
take a transaction-scoped advisory lock keyed by the schema name first: any number of
processes may start at once and each migration is still applied exactly once.
"""

from __future__ import annotations

import asyncpg

from sluice.errors import StoreError

# Each entry upgrades the schema by one version. Never edit a released entry; append a new one.
# Times are seconds since the epoch (double precision), as in the SQLite store.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        id text PRIMARY KEY,
        workflow text NOT NULL,
        version text NOT NULL,
        tenant text NOT NULL,
        state text NOT NULL,
        input bytea NOT NULL,
        result bytea,
        error text,
        created_at double precision NOT NULL,
        deadline double precision NOT NULL,
        finished_at double precision
    );
    CREATE INDEX events_state ON events(state, created_at);
    CREATE INDEX events_created ON events(created_at);
    CREATE TABLE jobs (
        id bigserial PRIMARY KEY,
        event_id text NOT NULL,
        step integer NOT NULL,
        pool text NOT NULL,
        workflow text NOT NULL,
        version text NOT NULL,
        tenant text NOT NULL,
        state text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        input bytea NOT NULL,
        ready_at double precision NOT NULL,
        run_at double precision NOT NULL,
        deadline double precision NOT NULL,
        owner text,
        lease_until double precision,
        last_error text,
        UNIQUE (event_id, step)
    );
    CREATE INDEX jobs_ready ON jobs(pool, run_at) WHERE state = 'ready';
    CREATE INDEX jobs_leased ON jobs(owner, lease_until) WHERE state = 'leased';
    CREATE TABLE step_results (
        event_id text NOT NULL,
        step integer NOT NULL,
        name text NOT NULL,
        attempts integer NOT NULL,
        queued_at double precision NOT NULL,
        started_at double precision NOT NULL,
        finished_at double precision NOT NULL,
        output bytea NOT NULL,
        PRIMARY KEY (event_id, step)
    );
    CREATE TABLE owners (
        owner text PRIMARY KEY,
        beat_at double precision NOT NULL
    );
    """,
    """
    ALTER TABLE events ADD COLUMN original bytea;
    CREATE TABLE idempotency (
        tenant text NOT NULL,
        key text NOT NULL,
        request_hash text NOT NULL,
        event_id text NOT NULL,
        status text NOT NULL,
        created_at double precision NOT NULL,
        PRIMARY KEY (tenant, key)
    );
    CREATE INDEX idempotency_age ON idempotency(created_at);
    CREATE INDEX idempotency_event ON idempotency(event_id);
    CREATE TABLE quarantine (
        id text PRIMARY KEY,
        source text NOT NULL,
        workflow text NOT NULL,
        tenant text NOT NULL,
        reason text NOT NULL,
        problems text[] NOT NULL,
        payload bytea NOT NULL,
        created_at double precision NOT NULL
    );
    CREATE INDEX quarantine_created ON quarantine(created_at);
    CREATE TABLE api_keys (
        id text PRIMARY KEY,
        tenant text NOT NULL,
        roles text[] NOT NULL,
        secret_hash text NOT NULL,
        created_at double precision NOT NULL,
        revoked_at double precision
    );
    """,
    """
    ALTER TABLE events ADD COLUMN trace text;
    ALTER TABLE jobs ADD COLUMN trace text;
    CREATE TABLE spans (
        id bigserial PRIMARY KEY,
        trace_id text NOT NULL,
        span_id text NOT NULL,
        parent_id text,
        name text NOT NULL,
        kind text NOT NULL,
        start_ns bigint NOT NULL,
        end_ns bigint NOT NULL,
        status text NOT NULL,
        event_id text,
        attributes jsonb NOT NULL
    );
    CREATE INDEX spans_trace ON spans(trace_id);
    CREATE INDEX spans_event ON spans(event_id) WHERE event_id IS NOT NULL;
    CREATE TABLE costs (
        id bigserial PRIMARY KEY,
        ts double precision NOT NULL,
        event_id text,
        trace_id text,
        tenant text NOT NULL,
        workflow text NOT NULL,
        step text NOT NULL,
        model text NOT NULL,
        input_tokens bigint NOT NULL,
        output_tokens bigint NOT NULL,
        cost double precision NOT NULL,
        cached boolean NOT NULL
    );
    CREATE INDEX costs_ts ON costs(ts);
    """,
    # Text derived from payloads is sealed by the payload codec from now on (``store.at_rest``):
    # plain rows become their UTF-8 bytes (problems as a JSON array) and still read.
    # Idempotency keys are kept as digests.
    """
    ALTER TABLE events ALTER COLUMN error TYPE bytea USING convert_to(error, 'UTF8');
    ALTER TABLE jobs ALTER COLUMN last_error TYPE bytea USING convert_to(last_error, 'UTF8');
    ALTER TABLE quarantine ALTER COLUMN reason TYPE bytea USING convert_to(reason, 'UTF8');
    ALTER TABLE quarantine ALTER COLUMN problems TYPE bytea
        USING convert_to(array_to_json(problems)::text, 'UTF8');
    UPDATE idempotency SET key = encode(sha256(convert_to(key, 'UTF8')), 'hex');
    """,
    # API key expiry; a generation bumped by every revocation, which each process's key cache
    # polls; the events replayed quarantine entries became (so their first ids still resolve).
    """
    ALTER TABLE api_keys ADD COLUMN expires_at double precision;
    CREATE TABLE api_key_generation (
        id integer PRIMARY KEY CHECK (id = 1),
        generation bigint NOT NULL
    );
    INSERT INTO api_key_generation(id, generation) VALUES (1, 0);
    CREATE TABLE quarantine_replays (
        id text PRIMARY KEY,
        event_id text NOT NULL,
        replayed_at double precision NOT NULL
    );
    """,
    # The feature flag is event metadata beside the data (it was a reserved data key).
    """
    ALTER TABLE events ADD COLUMN flag text;
    ALTER TABLE jobs ADD COLUMN flag text;
    """,
    # The prompt template (name@version) a ledgered call rendered.
    """
    ALTER TABLE costs ADD COLUMN template text;
    """,
    # Principals (users, service accounts), their built-in roles and hashed tokens; the audit
    # trail (a hash chain with its head in one row, which appenders lock) and its signed
    # checkpoints.
    """
    CREATE TABLE principals (
        id text PRIMARY KEY,
        name text NOT NULL UNIQUE,
        kind text NOT NULL,
        created_at double precision NOT NULL,
        disabled_at double precision
    );
    CREATE TABLE principal_roles (
        principal_id text NOT NULL,
        role text NOT NULL,
        granted_at double precision NOT NULL,
        PRIMARY KEY (principal_id, role)
    );
    CREATE TABLE principal_tokens (
        id text PRIMARY KEY,
        principal_id text NOT NULL,
        secret_hash text NOT NULL,
        created_at double precision NOT NULL,
        expires_at double precision,
        revoked_at double precision
    );
    CREATE TABLE audit_log (
        seq bigint PRIMARY KEY,
        ts double precision NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        resource text NOT NULL,
        before_digest text,
        after_digest text,
        why text NOT NULL,
        source text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL
    );
    CREATE TABLE audit_head (
        id integer PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        hash text NOT NULL
    );
    INSERT INTO audit_head(id, seq, hash) VALUES (1, 0, repeat('0', 64));
    CREATE TABLE audit_checkpoints (
        seq bigint PRIMARY KEY,
        hash text NOT NULL,
        ts double precision NOT NULL,
        key_id text NOT NULL,
        signature text NOT NULL
    );
    """,
    # Releases: immutable, content-addressed bundles of one workflow version (sluice.releases).
    """
    CREATE TABLE releases (
        id text PRIMARY KEY,
        workflow text NOT NULL,
        manifest jsonb NOT NULL,
        created_at double precision NOT NULL,
        created_by text NOT NULL DEFAULT '',
        note text NOT NULL DEFAULT ''
    );
    CREATE INDEX releases_by_workflow ON releases(workflow, created_at);
    """,
    # Managed configuration: secret versions (envelope-encrypted), prompt template versions,
    # routing rules versions.
    """
    CREATE TABLE secrets (
        name text NOT NULL,
        version integer NOT NULL,
        wrapped_key bytea NOT NULL,
        value bytea NOT NULL,
        created_at double precision NOT NULL,
        created_by text NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE prompt_templates (
        name text NOT NULL,
        version text NOT NULL,
        source text NOT NULL,
        created_at double precision NOT NULL,
        created_by text NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE routing_rules (
        version integer PRIMARY KEY,
        document text NOT NULL,
        created_at double precision NOT NULL,
        created_by text NOT NULL
    );
    """,
)


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


async def schema_version(conn: asyncpg.Connection, schema: str) -> int:
    """The version recorded in ``schema`` (0 when the schema or its table does not exist)."""
    exists = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f"{quote_ident(schema)}.schema_version"
    )
    if not exists:
        return 0
    value = await conn.fetchval(f"SELECT max(version) FROM {quote_ident(schema)}.schema_version")
    return int(value or 0)


async def migrate(conn: asyncpg.Connection, schema: str) -> int:
    """Apply pending migrations to ``schema``, each in its own transaction; return the version."""
    ident = quote_ident(schema)
    while True:
        async with conn.transaction():
            # Serialises migrators of this schema across processes; released at commit.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"sluice:{schema}")
            current = await schema_version(conn, schema)
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"database schema {schema!r} is at version {current}, newer than this "
                    f"Sluice ({len(MIGRATIONS)}); upgrade Sluice"
                )
            if current == len(MIGRATIONS):
                return current
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ident}")
            await conn.execute(f"SET LOCAL search_path TO {ident}")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"
            )
            await conn.execute(MIGRATIONS[current])
            await conn.execute("INSERT INTO schema_version(version) VALUES ($1)", current + 1)


async def drop_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Remove ``schema`` and everything in it (tests and benchmarks clean up with this)."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
