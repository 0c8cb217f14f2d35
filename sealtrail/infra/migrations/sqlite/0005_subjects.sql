-- Data subjects: erasure history, legal holds and retention runs. The SQLite form of PostgreSQL
-- migration 0005 (types as in 0001; regex CHECKs become GLOB and length checks of the same
-- meaning). No row-level security: the SQLite adapters (services/query/erasure_sqlite.py,
-- retention_sqlite.py) name the tenant in every statement. history_ref is the keyed hash
-- described in the PostgreSQL migration; it matches nothing in data_keys or subject_index.

CREATE TABLE subject_erasures (
    tenant_id          TEXT NOT NULL REFERENCES tenants (tenant_id),
    request_ref        TEXT NOT NULL CHECK (length(request_ref) BETWEEN 1 AND 128
                                            AND request_ref GLOB '[A-Za-z0-9]*'
                                            AND NOT request_ref GLOB '*[^A-Za-z0-9._:/#-]*'),
    history_ref        BLOB NOT NULL CHECK (length(history_ref) = 32),
    legal_basis        TEXT NOT NULL CHECK (length(legal_basis) BETWEEN 1 AND 64
                                            AND legal_basis GLOB '[a-z]*'
                                            AND NOT legal_basis GLOB '*[^a-z0-9_.-]*'),
    requested_by       TEXT NOT NULL,
    state              TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    erased_key_ids     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(erased_key_ids)
                                                          AND json_type(erased_key_ids) = 'array'),
    payloads_deleted   INTEGER NOT NULL DEFAULT 0,
    index_rows_deleted INTEGER NOT NULL DEFAULT 0,
    event_id           TEXT,
    requested_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    erased_at          TEXT,
    caches_clear_by    TEXT,
    receipt            TEXT,
    PRIMARY KEY (tenant_id, request_ref),
    CHECK ((state = 'done') = (receipt IS NOT NULL))
) STRICT;
CREATE INDEX subject_erasures_history ON subject_erasures (tenant_id, history_ref, requested_at);

CREATE TABLE subject_holds (
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id),
    history_ref BLOB NOT NULL CHECK (length(history_ref) = 32),
    reason      TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 64 AND reason GLOB '[a-z]*'
                                     AND NOT reason GLOB '*[^a-z0-9_.-]*'),
    case_ref    TEXT CHECK (case_ref IS NULL OR (length(case_ref) BETWEEN 1 AND 128
                                                 AND case_ref GLOB '[A-Za-z0-9]*'
                                                 AND NOT case_ref GLOB '*[^A-Za-z0-9._:/#-]*')),
    set_by      TEXT NOT NULL,
    set_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    PRIMARY KEY (tenant_id, history_ref)
) STRICT;

CREATE TABLE retention_runs (
    tenant_id        TEXT NOT NULL REFERENCES tenants (tenant_id),
    period           TEXT NOT NULL CHECK (period GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]'
                                          AND substr(period, 6, 2) BETWEEN '01' AND '12'),
    period_key_id    TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    payloads_deleted INTEGER NOT NULL DEFAULT 0,
    event_id         TEXT,
    started_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    done_at          TEXT,
    PRIMARY KEY (tenant_id, period)
) STRICT;
