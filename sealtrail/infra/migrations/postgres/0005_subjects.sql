-- Data subjects (DESIGN section 4): erasure history, legal holds and retention runs.
--
-- Erasure history must stay findable after the subject's key is gone, without keeping the subject
-- id and without joining any key row. Rows are therefore keyed by the DPO's request reference and
-- by `history_ref` = BLAKE3(key = BLAKE3.derive_key("sealtrail subject history v1", tenant index
-- key), normalised subject id): a keyed hash that only a holder of the tenant's index key (hence of
-- the KEK) can compute from a subject id, and that differs from `subject_ref`, so it matches
-- nothing in data_keys or subject_index. See docs/query.md.

CREATE TABLE subject_erasures (
    tenant_id          text NOT NULL REFERENCES tenants (tenant_id),
    request_ref        text NOT NULL CHECK (request_ref ~ '^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,127}$'),
    history_ref        bytea NOT NULL CHECK (octet_length(history_ref) = 32),
    legal_basis        text NOT NULL CHECK (legal_basis ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    requested_by       text NOT NULL,            -- API key id of the DPO
    -- pending: started, not yet in the log (a retry with the same request_ref resumes it);
    -- done: the erasure event is acknowledged and the receipt signed.
    state              text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    erased_key_ids     text[] NOT NULL DEFAULT '{}',
    payloads_deleted   bigint NOT NULL DEFAULT 0,
    index_rows_deleted bigint NOT NULL DEFAULT 0,
    event_id           uuid,
    requested_at       timestamptz NOT NULL DEFAULT now(),
    erased_at          timestamptz,
    caches_clear_by    timestamptz,
    receipt            text,
    PRIMARY KEY (tenant_id, request_ref),
    CHECK ((state = 'done') = (receipt IS NOT NULL))
);
CREATE INDEX subject_erasures_history ON subject_erasures (tenant_id, history_ref, requested_at);

-- A subject under legal hold cannot be erased; clearing the hold deletes its row.
CREATE TABLE subject_holds (
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
    history_ref bytea NOT NULL CHECK (octet_length(history_ref) = 32),
    reason      text NOT NULL CHECK (reason ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    case_ref    text CHECK (case_ref IS NULL OR case_ref ~ '^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,127}$'),
    set_by      text NOT NULL,
    set_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, history_ref)
);

-- One row per expired period: pending rows are resumed by the next shredder run.
CREATE TABLE retention_runs (
    tenant_id        text NOT NULL REFERENCES tenants (tenant_id),
    period           text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    period_key_id    text NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    payloads_deleted bigint NOT NULL DEFAULT 0,
    event_id         uuid,
    started_at       timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz,
    PRIMARY KEY (tenant_id, period)
);

-- Reads go through the reader role with `sealtrail.tenant` set, like the ledger's tables.
GRANT SELECT ON subject_erasures, subject_holds, retention_runs TO sealtrail_reader;
ALTER TABLE subject_erasures ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_holds ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_subject_erasures ON subject_erasures TO sealtrail_reader
    USING (tenant_id = current_setting('sealtrail.tenant', true));
CREATE POLICY tenant_subject_holds ON subject_holds TO sealtrail_reader
    USING (tenant_id = current_setting('sealtrail.tenant', true));
CREATE POLICY tenant_retention_runs ON retention_runs TO sealtrail_reader
    USING (tenant_id = current_setting('sealtrail.tenant', true));
