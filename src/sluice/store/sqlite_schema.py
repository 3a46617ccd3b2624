"""SQLite schema and migrations, applied in order and recorded in ``schema_version``."""

from __future__ import annotations

import sqlite3

from sluice.errors import StoreError
from sluice.store.at_rest import key_digest

# Each entry upgrades the schema by one version. Never edit a released entry; append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        version TEXT NOT NULL,
        tenant TEXT NOT NULL,
        state TEXT NOT NULL,
        input BLOB NOT NULL,
        result BLOB,
        error TEXT,
        created_at REAL NOT NULL,
        deadline REAL NOT NULL,
        finished_at REAL
    ) WITHOUT ROWID;
    CREATE INDEX events_state ON events(state, created_at);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        pool TEXT NOT NULL,
        workflow TEXT NOT NULL,
        version TEXT NOT NULL,
        tenant TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        input BLOB NOT NULL,
        ready_at REAL NOT NULL,
        run_at REAL NOT NULL,
        deadline REAL NOT NULL,
        owner TEXT,
        lease_until REAL,
        last_error TEXT,
        UNIQUE (event_id, step)
    );
    CREATE INDEX jobs_ready ON jobs(pool, run_at) WHERE state = 'ready';
    CREATE INDEX jobs_leased ON jobs(owner, lease_until) WHERE state = 'leased';
    CREATE TABLE step_results (
        event_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        name TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        queued_at REAL NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        output BLOB NOT NULL,
        PRIMARY KEY (event_id, step)
    ) WITHOUT ROWID;
    CREATE TABLE owners (
        owner TEXT PRIMARY KEY,
        beat_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    """
    ALTER TABLE events ADD COLUMN original BLOB;
    CREATE TABLE idempotency (
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        event_id TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (tenant, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_age ON idempotency(created_at);
    CREATE TABLE quarantine (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        workflow TEXT NOT NULL,
        tenant TEXT NOT NULL,
        reason TEXT NOT NULL,
        problems TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        roles TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    ) WITHOUT ROWID;
    """,
    """
    ALTER TABLE events ADD COLUMN trace TEXT;
    ALTER TABLE jobs ADD COLUMN trace TEXT;
    CREATE TABLE spans (
        id INTEGER PRIMARY KEY,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_id TEXT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        status TEXT NOT NULL,
        event_id TEXT,
        attributes BLOB NOT NULL
    );
    CREATE INDEX spans_trace ON spans(trace_id);
    CREATE INDEX spans_event ON spans(event_id) WHERE event_id IS NOT NULL;
    CREATE TABLE costs (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        event_id TEXT,
        trace_id TEXT,
        tenant TEXT NOT NULL,
        workflow TEXT NOT NULL,
        step TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost REAL NOT NULL,
        cached INTEGER NOT NULL
    );
    CREATE INDEX costs_ts ON costs(ts);
    """,
    # Idempotency keys are kept as digests from now on (``store.at_rest``). Errors, reasons
    # and problems become sealed bytes in their TEXT columns (SQLite stores a BLOB as it is);
    # rows written before stay plain text and still read.
    """
    UPDATE idempotency SET key = sluice_key_digest(key);
    """,
    # API key expiry; a generation bumped by every revocation, which each process's key cache
    # polls; the events replayed quarantine entries became (so their first ids still resolve).
    """
    ALTER TABLE api_keys ADD COLUMN expires_at REAL;
    CREATE TABLE api_key_generation (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL
    );
    INSERT INTO api_key_generation(id, generation) VALUES (1, 0);
    CREATE TABLE quarantine_replays (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        replayed_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # The feature flag is event metadata beside the data (it was a reserved data key).
    """
    ALTER TABLE events ADD COLUMN flag TEXT;
    ALTER TABLE jobs ADD COLUMN flag TEXT;
    """,
    # The prompt template (name@version) a ledgered call rendered.
    """
    ALTER TABLE costs ADD COLUMN template TEXT;
    """,
    # Principals (users, service accounts), their built-in roles and hashed tokens; the audit
    # trail (a hash chain with its head in one row, which appenders lock) and its signed
    # checkpoints.
    """
    CREATE TABLE principals (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        created_at REAL NOT NULL,
        disabled_at REAL
    ) WITHOUT ROWID;
    CREATE TABLE principal_roles (
        principal_id TEXT NOT NULL,
        role TEXT NOT NULL,
        granted_at REAL NOT NULL,
        PRIMARY KEY (principal_id, role)
    ) WITHOUT ROWID;
    CREATE TABLE principal_tokens (
        id TEXT PRIMARY KEY,
        principal_id TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL
    ) WITHOUT ROWID;
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        before_digest TEXT,
        after_digest TEXT,
        why TEXT NOT NULL,
        source TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    INSERT INTO audit_head(id, seq, hash) VALUES (1, 0, hex(zeroblob(32)));
    CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        ts REAL NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL
    );
    """,
    # Releases: immutable, content-addressed bundles of one workflow version (sluice.releases).
    """
    CREATE TABLE releases (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        manifest TEXT NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX releases_by_workflow ON releases(workflow, created_at);
    """,
    # Managed configuration: secret versions (envelope-encrypted), prompt template versions,
    # routing rules versions.
    """
    CREATE TABLE secrets (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        wrapped_key BLOB NOT NULL,
        value BLOB NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (name, version)
    ) WITHOUT ROWID;
    CREATE TABLE prompt_templates (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (name, version)
    ) WITHOUT ROWID;
    CREATE TABLE routing_rules (
        version INTEGER PRIMARY KEY,
        document TEXT NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL
    );
    """,
)


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for a new one)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction; return the resulting version.

    ``BEGIN IMMEDIATE`` takes the write lock first, so two processes starting at once apply
    each migration exactly once.
    """
    conn.create_function("sluice_key_digest", 1, key_digest, deterministic=True)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"database schema version {current} is newer than this Sluice "
                    f"({len(MIGRATIONS)}); upgrade Sluice"
                )
            if current == len(MIGRATIONS):
                conn.execute("COMMIT")
                return current
            for statement in MIGRATIONS[current].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version(version) VALUES (?)", (current + 1,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
