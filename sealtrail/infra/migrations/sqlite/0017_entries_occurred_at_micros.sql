-- entries.occurred_at as INTEGER microseconds since 1970-01-01T00:00:00Z (SQLite;
-- sealtrail/infra/micros.py) instead of 27 characters of text: 19 bytes less in the row and in
-- each of the four indexes that hold it (entries_agent, entries_tool, entries_server,
-- entries_time; ~76 bytes per event). Integers sort as the fixed-width text did, so every range
-- and keyset comparison of the query adapters keeps its index. A STRICT table cannot change a
-- column's type: the table is rebuilt in log order with its keys and indexes as they were.
-- PostgreSQL stores timestamptz (8 bytes) already.

CREATE TABLE entries_compact (
    log_id        TEXT NOT NULL,
    idx           INTEGER NOT NULL CHECK (idx >= 0),
    tenant_id     TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    type          TEXT NOT NULL,
    occurred_at   INTEGER NOT NULL,
    agent_id      TEXT,
    session_id    TEXT,
    server_id     TEXT,
    tool_name     TEXT,
    tool_tier     TEXT,
    decision      TEXT,
    status        TEXT,
    cost_micros   INTEGER,
    entry         BLOB NOT NULL,
    leaf          BLOB NOT NULL,
    chain         BLOB NOT NULL,
    latency_ms    REAL,
    PRIMARY KEY (log_id, idx),
    UNIQUE (log_id, event_id)
) STRICT;
INSERT INTO entries_compact (log_id, idx, tenant_id, event_id, type, occurred_at, agent_id, session_id,
                             server_id, tool_name, tool_tier, decision, status, cost_micros, entry, leaf,
                             chain, latency_ms)
    SELECT log_id, idx, tenant_id, event_id, type,
           CAST(strftime('%s', substr(occurred_at, 1, 19)) AS INTEGER) * 1000000
               + CAST(substr(occurred_at, 21, 6) AS INTEGER),
           agent_id, session_id, server_id, tool_name, tool_tier, decision, status, cost_micros, entry, leaf,
           chain, latency_ms
      FROM entries ORDER BY log_id, idx;
DROP TABLE entries;
ALTER TABLE entries_compact RENAME TO entries;
CREATE INDEX entries_agent ON entries (tenant_id, agent_id, occurred_at);
CREATE INDEX entries_session ON entries (tenant_id, session_id, idx) WHERE session_id IS NOT NULL;
CREATE INDEX entries_tool ON entries (tenant_id, tool_name, occurred_at);
CREATE INDEX entries_server ON entries (tenant_id, server_id, occurred_at);
CREATE INDEX entries_time ON entries (tenant_id, occurred_at);
CREATE INDEX entries_system_events ON entries (log_id, idx) WHERE type IN ('erasure', 'retention');
