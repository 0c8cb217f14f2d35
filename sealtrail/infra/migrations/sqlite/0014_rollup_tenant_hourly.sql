-- Calls per tenant and hour, per currency (see the PostgreSQL migration 0014).
CREATE TABLE rollup_tenant_hourly (
    tenant_id    TEXT NOT NULL,
    bucket       TEXT NOT NULL,
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
    PRIMARY KEY (tenant_id, bucket, currency)
) STRICT;
INSERT INTO rollup_tenant_hourly
SELECT r.tenant_id, r.bucket, r.currency, sum(r.calls), sum(r.ok), sum(r.errors), sum(r.executed), sum(r.denied),
       sum(r.step_up), sum(r.latency_n), sum(r.latency_sum),
       (SELECT json_group_array(n) FROM (
            SELECT sum(j.value) AS n FROM rollup_tool_hourly o, json_each(o.latency_hist) AS j
             WHERE o.tenant_id = r.tenant_id AND o.bucket = r.bucket AND o.currency = r.currency
             GROUP BY j.key ORDER BY j.key)),
       sum(r.cost_micros)
  FROM rollup_tool_hourly r GROUP BY r.tenant_id, r.bucket, r.currency;
