-- Read models of the query service: the SQLite form of PostgreSQL migration 0004 (types as in
-- 0001). Every table is derived from committed entries alone; the projector advances a log's
-- progress row in the same transaction as the rows it derived. Differences from PostgreSQL:
-- * No row-level security: every query of the SQLite query adapters (services/query/*_sqlite.py)
--   names the tenant in its WHERE clause; that is the only barrier between tenants here.
-- * latency_hist (bigint[] there) is TEXT holding a JSON array of the fixed log-scale buckets
--   (services/query/histogram.py). There is no sealtrail_hist_add() in the schema: the projector
--   registers a Python function of that name on its connection, and analytics merges in Python.
-- * `LIKE ... INCLUDING ALL` is spelled out.

CREATE TABLE projector_progress (
    log_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    next_idx    INTEGER NOT NULL DEFAULT 0 CHECK (next_idx >= 0),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
) STRICT;

CREATE TABLE rollup_hourly (
    tenant_id    TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    server_id    TEXT NOT NULL,
    tool_name    TEXT NOT NULL,
    agent_id     TEXT NOT NULL,
    decision     TEXT NOT NULL,
    status       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    calls        INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    latency_n    INTEGER NOT NULL,
    latency_sum  INTEGER NOT NULL,
    latency_hist TEXT NOT NULL CHECK (json_valid(latency_hist) AND json_type(latency_hist) = 'array'),
    cost_micros  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, bucket, server_id, tool_name, agent_id, decision, status, currency)
) STRICT;

CREATE TABLE rollup_tool_hourly (
    tenant_id    TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    server_id    TEXT NOT NULL,
    tool_name    TEXT NOT NULL,
    currency     TEXT NOT NULL,
    calls        INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    executed     INTEGER NOT NULL,
    denied       INTEGER NOT NULL,
    step_up      INTEGER NOT NULL,
    latency_n    INTEGER NOT NULL,
    latency_sum  INTEGER NOT NULL,
    latency_hist TEXT NOT NULL CHECK (json_valid(latency_hist) AND json_type(latency_hist) = 'array'),
    cost_micros  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, bucket, server_id, tool_name, currency)
) STRICT;
CREATE TABLE rollup_tool_daily (
    tenant_id    TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    server_id    TEXT NOT NULL,
    tool_name    TEXT NOT NULL,
    currency     TEXT NOT NULL,
    calls        INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    executed     INTEGER NOT NULL,
    denied       INTEGER NOT NULL,
    step_up      INTEGER NOT NULL,
    latency_n    INTEGER NOT NULL,
    latency_sum  INTEGER NOT NULL,
    latency_hist TEXT NOT NULL CHECK (json_valid(latency_hist) AND json_type(latency_hist) = 'array'),
    cost_micros  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, bucket, server_id, tool_name, currency)
) STRICT;
CREATE TABLE rollup_agent_hourly (
    tenant_id    TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    agent_id     TEXT NOT NULL,
    currency     TEXT NOT NULL,
    calls        INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    executed     INTEGER NOT NULL,
    denied       INTEGER NOT NULL,
    step_up      INTEGER NOT NULL,
    latency_n    INTEGER NOT NULL,
    latency_sum  INTEGER NOT NULL,
    latency_hist TEXT NOT NULL CHECK (json_valid(latency_hist) AND json_type(latency_hist) = 'array'),
    cost_micros  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, bucket, agent_id, currency)
) STRICT;
CREATE TABLE rollup_agent_daily (
    tenant_id    TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    agent_id     TEXT NOT NULL,
    currency     TEXT NOT NULL,
    calls        INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    executed     INTEGER NOT NULL,
    denied       INTEGER NOT NULL,
    step_up      INTEGER NOT NULL,
    latency_n    INTEGER NOT NULL,
    latency_sum  INTEGER NOT NULL,
    latency_hist TEXT NOT NULL CHECK (json_valid(latency_hist) AND json_type(latency_hist) = 'array'),
    cost_micros  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, bucket, agent_id, currency)
) STRICT;

CREATE TABLE rollup_rate_limits (
    tenant_id     TEXT NOT NULL,
    bucket        TEXT NOT NULL,
    limit_id      TEXT NOT NULL,
    scope         TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    server_id     TEXT NOT NULL,
    tool_name     TEXT NOT NULL,
    events        INTEGER NOT NULL,
    max_observed  INTEGER NOT NULL,
    max_limit     INTEGER NOT NULL,
    max_window_s  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, bucket, limit_id, scope, agent_id, server_id, tool_name)
) STRICT;

-- Which entries each data subject's key seals. The projector writes these rows in the same write
-- transaction in which it reads the active subject keys, and the single writer serialises it
-- with erasure, so an erasure never leaves one behind.
CREATE TABLE subject_index (
    tenant_id   TEXT NOT NULL,
    subject_ref BLOB NOT NULL,
    key_id      TEXT NOT NULL,
    log_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, subject_ref, log_id, idx)
) STRICT;
CREATE INDEX subject_index_key ON subject_index (tenant_id, key_id);

CREATE TABLE sessions (
    tenant_id   TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    agent_id    TEXT,
    log_id      TEXT NOT NULL,
    first_at    TEXT NOT NULL,
    last_at     TEXT NOT NULL,
    first_idx   INTEGER NOT NULL,
    last_idx    INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    calls       INTEGER NOT NULL,
    errors      INTEGER NOT NULL,
    denials     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
) STRICT;
CREATE INDEX sessions_last ON sessions (tenant_id, last_at DESC);
CREATE INDEX sessions_agent ON sessions (tenant_id, agent_id, last_at DESC);

CREATE TABLE tool_definitions (
    tenant_id      TEXT NOT NULL,
    server_id      TEXT NOT NULL,
    tool_name      TEXT NOT NULL,
    def_hash       TEXT NOT NULL,
    log_id         TEXT NOT NULL,
    first_seen_at  TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    first_idx      INTEGER NOT NULL,
    last_idx       INTEGER NOT NULL,
    snapshots      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, server_id, tool_name, def_hash)
) STRICT;

CREATE TABLE server_tools (
    tenant_id  TEXT NOT NULL,
    server_id  TEXT NOT NULL,
    tool_name  TEXT NOT NULL,
    def_hash   TEXT NOT NULL,
    log_id     TEXT NOT NULL,
    since_at   TEXT NOT NULL,
    since_idx  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, server_id, tool_name)
) STRICT;

CREATE TABLE tool_definition_changes (
    tenant_id    TEXT NOT NULL,
    log_id       TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    server_id    TEXT NOT NULL,
    tool_name    TEXT NOT NULL,
    change       TEXT NOT NULL CHECK (change IN ('added', 'removed', 'changed')),
    old_hash     TEXT,
    new_hash     TEXT,
    occurred_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, log_id, idx, server_id, tool_name)
) STRICT;
CREATE INDEX tool_definition_changes_time ON tool_definition_changes (tenant_id, occurred_at);
CREATE INDEX tool_definition_changes_tool ON tool_definition_changes (tenant_id, server_id, tool_name, log_id, idx);

CREATE TABLE tool_usage (
    tenant_id      TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    server_id      TEXT NOT NULL,
    tool_name      TEXT NOT NULL,
    first_used_at  TEXT NOT NULL,
    first_log_id   TEXT NOT NULL,
    first_idx      INTEGER NOT NULL,
    last_used_at   TEXT NOT NULL,
    calls          INTEGER NOT NULL,
    def_hash       TEXT,
    def_hash_at    TEXT,
    PRIMARY KEY (tenant_id, agent_id, server_id, tool_name)
) STRICT;
CREATE INDEX tool_usage_first ON tool_usage (tenant_id, first_used_at);
CREATE INDEX tool_usage_tool ON tool_usage (tenant_id, server_id, tool_name);
