-- One row per tool and hour, every currency together (see the PostgreSQL migration 0013): what
-- drift scoring reads. PostgreSQL also stores each row's latency p95; here the embedded database's
-- few rows are summarised in Python from the histogram.
CREATE TABLE rollup_tool_hourly_merged (
    tenant_id    TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    server_id    TEXT NOT NULL,
    tool_name    TEXT NOT NULL,
    calls        INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    executed     INTEGER NOT NULL,
    denied       INTEGER NOT NULL,
    step_up      INTEGER NOT NULL,
    latency_n    INTEGER NOT NULL,
    latency_sum  INTEGER NOT NULL,
    latency_hist TEXT NOT NULL CHECK (json_valid(latency_hist) AND json_type(latency_hist) = 'array'),
    PRIMARY KEY (tenant_id, bucket, server_id, tool_name)
) STRICT;
INSERT INTO rollup_tool_hourly_merged
SELECT r.tenant_id, r.bucket, r.server_id, r.tool_name, sum(r.calls), sum(r.ok), sum(r.errors), sum(r.executed),
       sum(r.denied), sum(r.step_up), sum(r.latency_n), sum(r.latency_sum),
       (SELECT json_group_array(n) FROM (
            SELECT sum(j.value) AS n FROM rollup_tool_hourly o, json_each(o.latency_hist) AS j
             WHERE o.tenant_id = r.tenant_id AND o.bucket = r.bucket AND o.server_id = r.server_id
               AND o.tool_name = r.tool_name
             GROUP BY j.key ORDER BY j.key))
  FROM rollup_tool_hourly r GROUP BY r.tenant_id, r.bucket, r.server_id, r.tool_name;
