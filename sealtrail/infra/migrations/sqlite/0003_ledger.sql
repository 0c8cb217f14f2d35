-- The verifiable log (DESIGN sections 5 and 6): the SQLite form of PostgreSQL migration 0003.
-- Types as in 0001. Differences from PostgreSQL:
-- * No row-level security: the SQLite adapters name the tenant in every tenant-scoped query.
-- * No GIN index on payloads.key_ids: payload_keys holds one row per (payload, key id), so the
--   payloads sealed under a key are found by index when that key is erased or expires.

CREATE TABLE logs (
    log_id       TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (tenant_id),
    origin       TEXT NOT NULL UNIQUE,
    -- The tree head after the last committed batch. Writers advance it with a compare-and-set
    -- on size, so two ledgers can never both append at one index.
    size         INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    root         BLOB NOT NULL,
    chain_head   BLOB NOT NULL,
    compact      BLOB NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
) STRICT;
CREATE INDEX logs_tenant ON logs (tenant_id);

-- One row per log entry. `entry` holds the exact RFC 8785 bytes that were hashed; the other
-- header columns are copies for investigations and analytics.
CREATE TABLE entries (
    log_id        TEXT NOT NULL,
    idx           INTEGER NOT NULL CHECK (idx >= 0),
    tenant_id     TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    type          TEXT NOT NULL,
    occurred_at   TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    agent_id      TEXT,
    session_id    TEXT,
    server_id     TEXT,
    tool_name     TEXT,
    tool_tier     TEXT,
    decision      TEXT,
    status        TEXT,
    latency_ms    INTEGER,
    cost_micros   INTEGER,
    entry         BLOB NOT NULL,
    leaf          BLOB NOT NULL,
    chain         BLOB NOT NULL,
    PRIMARY KEY (log_id, idx),
    UNIQUE (log_id, event_id)
) STRICT;
CREATE INDEX entries_agent ON entries (tenant_id, agent_id, occurred_at);
CREATE INDEX entries_session ON entries (tenant_id, session_id, idx) WHERE session_id IS NOT NULL;
CREATE INDEX entries_tool ON entries (tenant_id, tool_name, occurred_at);
CREATE INDEX entries_server ON entries (tenant_id, server_id, occurred_at);
CREATE INDEX entries_time ON entries (tenant_id, occurred_at);
CREATE INDEX entries_event ON entries (tenant_id, event_id);

-- Sealed payloads, apart from entries so that erasure and retention can delete them.
CREATE TABLE payloads (
    log_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    tenant_id   TEXT NOT NULL,
    key_ids     TEXT NOT NULL CHECK (json_valid(key_ids) AND json_type(key_ids) = 'array'),
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    PRIMARY KEY (log_id, idx)
) STRICT;

CREATE TABLE payload_keys (
    key_id      TEXT NOT NULL,
    log_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    PRIMARY KEY (key_id, log_id, idx)
) STRICT, WITHOUT ROWID;

-- Perfect-subtree nodes of level >= 1; level 0 (the leaves) is entries.leaf.
CREATE TABLE tree_nodes (
    log_id  TEXT NOT NULL,
    level   INTEGER NOT NULL CHECK (level >= 1),
    idx     INTEGER NOT NULL,
    hash    BLOB NOT NULL,
    PRIMARY KEY (log_id, level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE batches (
    log_id      TEXT NOT NULL,
    first_idx   INTEGER NOT NULL,
    count       INTEGER NOT NULL CHECK (count > 0),
    batch_root  BLOB NOT NULL,
    tree_size   INTEGER NOT NULL,
    tree_root   BLOB NOT NULL,
    chain_head  BLOB NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    PRIMARY KEY (log_id, first_idx)
) STRICT;

CREATE TABLE signing_keys (
    key_name    TEXT NOT NULL,
    key_id      TEXT NOT NULL,               -- hex of the 4-byte C2SP key ID
    purpose     TEXT NOT NULL CHECK (purpose IN ('checkpoint', 'cosign', 'receipt')),
    vkey        TEXT NOT NULL UNIQUE,
    not_before  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    not_after   TEXT,
    PRIMARY KEY (key_name, key_id, purpose)
) STRICT;

CREATE TABLE checkpoints (
    log_id      TEXT NOT NULL,
    tree_size   INTEGER NOT NULL,
    root        BLOB NOT NULL,
    note        TEXT NOT NULL,
    signed_at   TEXT NOT NULL,
    PRIMARY KEY (log_id, tree_size)
) STRICT;

CREATE TABLE consumer_offsets (
    group_id     TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) STRICT;
