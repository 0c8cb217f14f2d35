-- Drift scoring compares each tool's hours with its own baseline of 7 days: per hour, the calls,
-- the outcome counters and the latency p95. rollup_tool_hourly splits an hour by currency, so
-- scoring had to merge rows and histograms of 33,600 tool-hours per request (200 tools). The
-- projector now also keeps rollup_tool_hourly_merged: one row per tool and hour, every currency
-- together, and PostgreSQL stores the hour's latency p95 with the row whenever the projector
-- writes it.
--
-- sealtrail_hist_quantile is sealtrail.core.histogram.percentile in PL/pgSQL, with the same
-- double-precision steps (geometric interpolation inside the bucket, rounded down to the
-- microsecond), so its values equal the Python function's (tests/contract compare them).

CREATE FUNCTION sealtrail_hist_quantile(hist bigint[], q double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    last  constant integer := array_length(hist, 1) - 1;
    total bigint := 0;
    seen  bigint := 0;
    rank  double precision;
    n     bigint;
    lo    double precision;
    hi    double precision;
BEGIN
    FOR b IN 0..last LOOP
        total := total + hist[b + 1];
    END LOOP;
    IF total = 0 THEN
        RETURN NULL;
    END IF;
    rank := q * total::double precision;
    FOR b IN 0..last LOOP
        n := hist[b + 1];
        IF n > 0 AND (seen + n)::double precision >= rank THEN
            IF b = 0 THEN
                RETURN 0;
            ELSIF b = last THEN
                EXIT;
            END IF;
            lo := 2::double precision ^ ((b - 1)::double precision / 2);
            hi := 2::double precision ^ (b::double precision / 2);
            RETURN floor(lo * (hi / lo) ^ ((rank - seen::double precision) / n::double precision) * 1000) / 1000;
        END IF;
        seen := seen + n;
    END LOOP;
    RETURN 2::double precision ^ ((last - 1)::double precision / 2);
END
$$;

-- The sum of several histograms (for the backfill below).
CREATE AGGREGATE sealtrail_hist_sum(bigint[]) (SFUNC = sealtrail_hist_add, STYPE = bigint[]);

CREATE TABLE rollup_tool_hourly_merged (
    tenant_id    text NOT NULL,
    bucket       timestamptz NOT NULL,
    server_id    text NOT NULL,
    tool_name    text NOT NULL,
    calls        bigint NOT NULL,
    ok           bigint NOT NULL,
    errors       bigint NOT NULL,
    executed     bigint NOT NULL,
    denied       bigint NOT NULL,
    step_up      bigint NOT NULL,
    latency_n    bigint NOT NULL,
    latency_sum  bigint NOT NULL,
    latency_hist bigint[] NOT NULL,
    latency_p95  double precision GENERATED ALWAYS AS (sealtrail_hist_quantile(latency_hist, 0.95)) STORED,
    PRIMARY KEY (tenant_id, bucket, server_id, tool_name)
);
INSERT INTO rollup_tool_hourly_merged (tenant_id, bucket, server_id, tool_name, calls, ok, errors, executed,
                                       denied, step_up, latency_n, latency_sum, latency_hist)
SELECT tenant_id, bucket, server_id, tool_name, sum(calls), sum(ok), sum(errors), sum(executed), sum(denied),
       sum(step_up), sum(latency_n), sum(latency_sum), sealtrail_hist_sum(latency_hist)
  FROM rollup_tool_hourly GROUP BY tenant_id, bucket, server_id, tool_name;

-- The hours that carry a cost, for the cost-rate baseline (most calls carry none).
CREATE INDEX rollup_tool_hourly_costed ON rollup_tool_hourly (tenant_id, bucket) WHERE currency <> '';

GRANT SELECT ON rollup_tool_hourly_merged TO sealtrail_reader;
ALTER TABLE rollup_tool_hourly_merged ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rollup_tool_hourly_merged ON rollup_tool_hourly_merged TO sealtrail_reader
    USING (tenant_id = current_setting('sealtrail.tenant', true));
