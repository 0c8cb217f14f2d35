-- Read models of the query service (DESIGN section 2: the projector). Every table here is derived
-- from committed entries alone: `sealtrail projector --rebuild` truncates them and replays the logs
-- from index 0 to the same rows. The projector advances each log's progress row in the same
-- transaction as the rows it derived, so a crash never projects an entry twice or skips one.

-- Next entry index to project, per log.
CREATE TABLE projector_progress (
    log_id      text PRIMARY KEY,
    tenant_id   text NOT NULL,
    next_idx    bigint NOT NULL DEFAULT 0 CHECK (next_idx >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Elementwise sum of two latency histograms of equal length.
CREATE FUNCTION sealtrail_hist_add(a bigint[], b bigint[]) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT array_agg(x + y ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i) $$;

-- tool_call events per UTC hour, one row per tool x agent x decision x status x currency. Absent
-- header strings are stored as ''. The latency histogram has fixed log-scale buckets
-- (services/query/histogram.py), so rows of any window merge by elementwise sums and p50/p95/p99
-- come from the merged histogram. `currency` is part of every rollup key so cost sums never mix
-- currencies; calls without a cost have currency ''.
CREATE TABLE rollup_hourly (
    tenant_id    text NOT NULL,
    bucket       timestamptz NOT NULL,
    server_id    text NOT NULL,
    tool_name    text NOT NULL,
    agent_id     text NOT NULL,
    decision     text NOT NULL,
    status       text NOT NULL,
    currency     text NOT NULL,
    calls        bigint NOT NULL,
    errors       bigint NOT NULL,            -- status error or timeout
    latency_n    bigint NOT NULL,
    latency_sum  bigint NOT NULL,
    latency_hist bigint[] NOT NULL,
    cost_micros  bigint NOT NULL,
    PRIMARY KEY (tenant_id, bucket, server_id, tool_name, agent_id, decision, status, currency)
);

-- The same calls summed per tool and per agent, per hour and per day: the analytics endpoints
-- and drift read these narrow tables, so a 30-day window merges hundreds of rows, not the full
-- product of tools, agents, decisions and statuses. Outcomes become counters:
-- ok (status ok), errors (error, timeout), executed (ok, error, timeout), denied (decision deny),
-- step_up (decision step_up).
CREATE TABLE rollup_tool_hourly (
    tenant_id    text NOT NULL,
    bucket       timestamptz NOT NULL,
    server_id    text NOT NULL,
    tool_name    text NOT NULL,
    currency     text NOT NULL,
    calls        bigint NOT NULL,
    ok           bigint NOT NULL,
    errors       bigint NOT NULL,
    executed     bigint NOT NULL,
    denied       bigint NOT NULL,
    step_up      bigint NOT NULL,
    latency_n    bigint NOT NULL,
    latency_sum  bigint NOT NULL,
    latency_hist bigint[] NOT NULL,
    cost_micros  bigint NOT NULL,
    PRIMARY KEY (tenant_id, bucket, server_id, tool_name, currency)
);
CREATE TABLE rollup_tool_daily (LIKE rollup_tool_hourly INCLUDING ALL);
CREATE TABLE rollup_agent_hourly (
    tenant_id    text NOT NULL,
    bucket       timestamptz NOT NULL,
    agent_id     text NOT NULL,
    currency     text NOT NULL,
    calls        bigint NOT NULL,
    ok           bigint NOT NULL,
    errors       bigint NOT NULL,
    executed     bigint NOT NULL,
    denied       bigint NOT NULL,
    step_up      bigint NOT NULL,
    latency_n    bigint NOT NULL,
    latency_sum  bigint NOT NULL,
    latency_hist bigint[] NOT NULL,
    cost_micros  bigint NOT NULL,
    PRIMARY KEY (tenant_id, bucket, agent_id, currency)
);
CREATE TABLE rollup_agent_daily (LIKE rollup_agent_hourly INCLUDING ALL);

-- rate_limit events per hour.
CREATE TABLE rollup_rate_limits (
    tenant_id     text NOT NULL,
    bucket        timestamptz NOT NULL,
    limit_id      text NOT NULL,
    scope         text NOT NULL,
    agent_id      text NOT NULL,
    server_id     text NOT NULL,
    tool_name     text NOT NULL,
    events        bigint NOT NULL,
    max_observed  bigint NOT NULL,
    max_limit     bigint NOT NULL,
    max_window_s  bigint NOT NULL,
    PRIMARY KEY (tenant_id, bucket, limit_id, scope, agent_id, server_id, tool_name)
);

-- Which entries each data subject's key seals: the subject's calls for export and erasure.
-- Only subject keys that were active when projected appear here; erasure deletes the rows of
-- the keys it destroys. Writers lock the data_keys rows FOR SHARE until they commit, so an
-- erasure that erases the key row before deleting these rows never leaves one behind.
CREATE TABLE subject_index (
    tenant_id   text NOT NULL,
    subject_ref bytea NOT NULL,
    key_id      text NOT NULL,
    log_id      text NOT NULL,
    idx         bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, subject_ref, log_id, idx)
);
CREATE INDEX subject_index_key ON subject_index (tenant_id, key_id);

-- One row per session; the timeline itself is read from entries (index entries_session).
CREATE TABLE sessions (
    tenant_id   text NOT NULL,
    session_id  text NOT NULL,
    agent_id    text,               -- the smallest agent id seen (sessions normally have one)
    log_id      text NOT NULL,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    first_idx   bigint NOT NULL,
    last_idx    bigint NOT NULL,
    events      bigint NOT NULL,
    calls       bigint NOT NULL,
    errors      bigint NOT NULL,
    denials     bigint NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
);
CREATE INDEX sessions_last ON sessions (tenant_id, last_at DESC);
CREATE INDEX sessions_agent ON sessions (tenant_id, agent_id, last_at DESC);

-- Tool definitions seen in tool_list snapshots: one row per distinct definition (def_hash).
CREATE TABLE tool_definitions (
    tenant_id      text NOT NULL,
    server_id      text NOT NULL,
    tool_name      text NOT NULL,
    def_hash       text NOT NULL,
    log_id         text NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    first_idx      bigint NOT NULL,
    last_idx       bigint NOT NULL,
    snapshots      bigint NOT NULL,
    PRIMARY KEY (tenant_id, server_id, tool_name, def_hash)
);

-- The latest snapshot of each server, per tool: what the server offers now.
CREATE TABLE server_tools (
    tenant_id  text NOT NULL,
    server_id  text NOT NULL,
    tool_name  text NOT NULL,
    def_hash   text NOT NULL,
    log_id     text NOT NULL,
    since_at   timestamptz NOT NULL,   -- when this definition became the current one
    since_idx  bigint NOT NULL,
    PRIMARY KEY (tenant_id, server_id, tool_name)
);

-- Differences between successive snapshots of a server, in log order.
CREATE TABLE tool_definition_changes (
    tenant_id    text NOT NULL,
    log_id       text NOT NULL,
    idx          bigint NOT NULL,
    server_id    text NOT NULL,
    tool_name    text NOT NULL,
    change       text NOT NULL CHECK (change IN ('added', 'removed', 'changed')),
    old_hash     text,
    new_hash     text,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, log_id, idx, server_id, tool_name)
);
CREATE INDEX tool_definition_changes_time ON tool_definition_changes (tenant_id, occurred_at);
CREATE INDEX tool_definition_changes_tool ON tool_definition_changes (tenant_id, server_id, tool_name, log_id, idx);

-- Each agent's use of each tool: first use, and the definition hash of its latest call that
-- carried one (ties in time broken by the hash, so the row never depends on projection order).
CREATE TABLE tool_usage (
    tenant_id      text NOT NULL,
    agent_id       text NOT NULL,
    server_id      text NOT NULL,
    tool_name      text NOT NULL,
    first_used_at  timestamptz NOT NULL,
    first_log_id   text NOT NULL,
    first_idx      bigint NOT NULL,
    last_used_at   timestamptz NOT NULL,
    calls          bigint NOT NULL,
    def_hash       text,
    def_hash_at    timestamptz,
    PRIMARY KEY (tenant_id, agent_id, server_id, tool_name)
);
CREATE INDEX tool_usage_first ON tool_usage (tenant_id, first_used_at);
CREATE INDEX tool_usage_tool ON tool_usage (tenant_id, server_id, tool_name);

-- Tenant isolation for the query service, as in 0003.
GRANT SELECT ON projector_progress, rollup_hourly, rollup_tool_hourly, rollup_tool_daily, rollup_agent_hourly,
    rollup_agent_daily, rollup_rate_limits, subject_index, sessions, tool_definitions, server_tools,
    tool_definition_changes, tool_usage TO sealtrail_reader;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['projector_progress', 'rollup_hourly', 'rollup_tool_hourly', 'rollup_tool_daily',
                             'rollup_agent_hourly', 'rollup_agent_daily', 'rollup_rate_limits', 'subject_index', 'sessions', 'tool_definitions', 'server_tools',
                             'tool_definition_changes', 'tool_usage'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I TO sealtrail_reader'
                       ' USING (tenant_id = current_setting(''sealtrail.tenant'', true))', 'tenant_' || t, t);
    END LOOP;
END
$$;
