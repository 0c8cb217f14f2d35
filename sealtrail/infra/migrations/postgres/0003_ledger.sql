-- The verifiable log (DESIGN sections 5 and 6): entries, sealed payloads, the stored Merkle tree,
-- batches, checkpoints, consumer offsets and the public parts of the signing keys.

CREATE TABLE logs (
    log_id       text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    origin       text NOT NULL UNIQUE,
    -- The tree head after the last committed batch. Writers advance it with a compare-and-set
    -- on size, so two ledgers can never both append at one index.
    size         bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    root         bytea NOT NULL,
    chain_head   bytea NOT NULL,
    compact      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX logs_tenant ON logs (tenant_id);

-- One row per log entry. `entry` holds the exact RFC 8785 bytes that were hashed; the other
-- header columns are copies for investigations and analytics.
CREATE TABLE entries (
    log_id        text NOT NULL,
    idx           bigint NOT NULL CHECK (idx >= 0),
    tenant_id     text NOT NULL,
    event_id      uuid NOT NULL,
    type          text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    agent_id      text,
    session_id    text,
    server_id     text,
    tool_name     text,
    tool_tier     text,
    decision      text,
    status        text,
    latency_ms    bigint,
    cost_micros   bigint,
    entry         bytea NOT NULL,
    leaf          bytea NOT NULL,
    chain         bytea NOT NULL,
    PRIMARY KEY (log_id, idx),
    UNIQUE (log_id, event_id)
);
CREATE INDEX entries_agent ON entries (tenant_id, agent_id, occurred_at);
CREATE INDEX entries_session ON entries (tenant_id, session_id, idx) WHERE session_id IS NOT NULL;
CREATE INDEX entries_tool ON entries (tenant_id, tool_name, occurred_at);
CREATE INDEX entries_server ON entries (tenant_id, server_id, occurred_at);
CREATE INDEX entries_time ON entries (tenant_id, occurred_at);

-- Sealed payloads, apart from entries so that erasure and retention can delete them.
CREATE TABLE payloads (
    log_id      text NOT NULL,
    idx         bigint NOT NULL,
    tenant_id   text NOT NULL,
    key_ids     text[] NOT NULL,
    nonce       bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    PRIMARY KEY (log_id, idx)
);
CREATE INDEX payloads_key_ids ON payloads USING gin (key_ids);

-- Perfect-subtree nodes of level >= 1; level 0 (the leaves) is entries.leaf.
CREATE TABLE tree_nodes (
    log_id  text NOT NULL,
    level   smallint NOT NULL CHECK (level >= 1),
    idx     bigint NOT NULL,
    hash    bytea NOT NULL,
    PRIMARY KEY (log_id, level, idx)
);

CREATE TABLE batches (
    log_id      text NOT NULL,
    first_idx   bigint NOT NULL,
    count       int NOT NULL CHECK (count > 0),
    batch_root  bytea NOT NULL,
    tree_size   bigint NOT NULL,
    tree_root   bytea NOT NULL,
    chain_head  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (log_id, first_idx)
);

CREATE TABLE signing_keys (
    key_name    text NOT NULL,
    key_id      text NOT NULL,               -- hex of the 4-byte C2SP key ID
    purpose     text NOT NULL CHECK (purpose IN ('checkpoint', 'cosign', 'receipt')),
    vkey        text NOT NULL UNIQUE,
    not_before  timestamptz NOT NULL DEFAULT now(),
    not_after   timestamptz,
    PRIMARY KEY (key_name, key_id, purpose)
);

CREATE TABLE checkpoints (
    log_id      text NOT NULL,
    tree_size   bigint NOT NULL,
    root        bytea NOT NULL,
    note        text NOT NULL,
    signed_at   timestamptz NOT NULL,
    PRIMARY KEY (log_id, tree_size)
);

CREATE TABLE consumer_offsets (
    group_id     text NOT NULL,
    topic        text NOT NULL,
    partition    int NOT NULL,
    next_offset  bigint NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

-- Tenant isolation on the read paths: the query service runs as sealtrail_reader and sets
-- `sealtrail.tenant` for each transaction; rows of other tenants are invisible to it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealtrail_reader') THEN
        CREATE ROLE sealtrail_reader NOLOGIN;
    END IF;
END
$$;
-- The migrating user may switch to the reader role (SET LOCAL ROLE) for tenant-scoped reads.
GRANT sealtrail_reader TO CURRENT_USER;
GRANT SELECT ON logs, entries, payloads, tree_nodes, batches, checkpoints, signing_keys TO sealtrail_reader;
ALTER TABLE logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE payloads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_logs ON logs TO sealtrail_reader
    USING (tenant_id = current_setting('sealtrail.tenant', true));
CREATE POLICY tenant_entries ON entries TO sealtrail_reader
    USING (tenant_id = current_setting('sealtrail.tenant', true));
CREATE POLICY tenant_payloads ON payloads TO sealtrail_reader
    USING (tenant_id = current_setting('sealtrail.tenant', true));
-- Tables keyed by log only: visible when the log itself is visible to the reader.
ALTER TABLE tree_nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_tree_nodes ON tree_nodes TO sealtrail_reader
    USING (EXISTS (SELECT 1 FROM logs l WHERE l.log_id = tree_nodes.log_id));
CREATE POLICY tenant_batches ON batches TO sealtrail_reader
    USING (EXISTS (SELECT 1 FROM logs l WHERE l.log_id = batches.log_id));
CREATE POLICY tenant_checkpoints ON checkpoints TO sealtrail_reader
    USING (EXISTS (SELECT 1 FROM logs l WHERE l.log_id = checkpoints.log_id));
