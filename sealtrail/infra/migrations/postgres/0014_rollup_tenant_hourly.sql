-- Calls per tenant and hour (every tool and agent together), per currency: what a time series of
-- every call reads. Summing rollup_tool_hourly instead meant adding the histograms of every tool's
-- row of every hour (7 days of 200 tools: 33,600 rows) on each request. Kept by the projector.
CREATE TABLE rollup_tenant_hourly (
    tenant_id    text NOT NULL,
    bucket       timestamptz NOT NULL,
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
    PRIMARY KEY (tenant_id, bucket, currency)
);
INSERT INTO rollup_tenant_hourly
SELECT tenant_id, bucket, currency, sum(calls), sum(ok), sum(errors), sum(executed), sum(denied), sum(step_up),
       sum(latency_n), sum(latency_sum), sealtrail_hist_sum(latency_hist), sum(cost_micros)
  FROM rollup_tool_hourly GROUP BY tenant_id, bucket, currency;

GRANT SELECT ON rollup_tenant_hourly TO sealtrail_reader;
ALTER TABLE rollup_tenant_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rollup_tenant_hourly ON rollup_tenant_hourly TO sealtrail_reader
    USING (tenant_id = current_setting('sealtrail.tenant', true));
