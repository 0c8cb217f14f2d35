-- Tenants, API keys and the data keys that seal payloads (DESIGN sections 4 and 7): the SQLite
-- form of PostgreSQL migrations 0001 and 0002 together, so there is no 0002 here. Later schema
-- changes get the same number in both directories.
--
-- Types: text -> TEXT, bytea -> BLOB, int/bigint -> INTEGER, timestamptz -> TEXT in UTC as
-- 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (fixed width, so text order is time order), uuid -> TEXT in
-- canonical lowercase form, text[] -> TEXT holding a JSON array. Regex CHECKs become GLOBs.

CREATE TABLE tenants (
    tenant_id        TEXT PRIMARY KEY CHECK (
        length(tenant_id) BETWEEN 1 AND 63 AND tenant_id GLOB '[a-z0-9]*'
        AND NOT tenant_id GLOB '*[^a-z0-9-]*'),
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    -- The tenant index key (BLAKE3 key for subject_ref), wrapped by the KEK.
    index_key        BLOB NOT NULL,
    index_key_kek    TEXT NOT NULL,
    -- Payload retention in whole UTC months; NULL keeps payloads until erased.
    retention_months INTEGER CHECK (retention_months IS NULL OR retention_months > 0)
) STRICT;

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id),
    role        TEXT NOT NULL CHECK (role IN ('gateway', 'investigator', 'dpo', 'auditor', 'operator')),
    -- SHA-256 of the secret part of the token; the token itself is shown once and never stored.
    secret_hash BLOB NOT NULL,
    -- Labels become the gateway_id stamped in clear into every event a gateway key sends.
    label       TEXT NOT NULL DEFAULT '' CHECK (
        label = '' OR (length(label) <= 63 AND label GLOB '[a-z0-9]*'
                       AND NOT label GLOB '*[^a-z0-9._-]*')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    expires_at  TEXT,
    revoked_at  TEXT
) STRICT;
CREATE INDEX api_keys_tenant_created ON api_keys (tenant_id, created_at, key_id);

-- Subject keys (one active per tenant and subject_ref) and period keys (one per tenant and UTC month).
-- Lifecycle: active -> erased (terminal). Erasing clears the wrapped secret and the subject_ref
-- link for good; the id stays as a tombstone.
CREATE TABLE data_keys (
    key_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id),
    kind        TEXT NOT NULL CHECK (kind IN ('subject', 'period')),
    subject_ref BLOB,
    period      TEXT CHECK (period IS NULL OR (period GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]'
                                               AND substr(period, 6, 2) BETWEEN '01' AND '12')),
    wrapped     BLOB,
    kek_id      TEXT,
    state       TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'erased')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    erased_at   TEXT,
    CHECK (CASE WHEN kind = 'subject' THEN (subject_ref IS NOT NULL) = (state = 'active')
                ELSE subject_ref IS NULL END),
    CHECK ((kind = 'period') = (period IS NOT NULL)),
    CHECK ((state = 'active') = (wrapped IS NOT NULL))
) STRICT;
-- Concurrent creators converge: at most one active key per subject, one key per period ever.
CREATE UNIQUE INDEX data_keys_one_active_subject ON data_keys (tenant_id, subject_ref)
    WHERE kind = 'subject' AND state = 'active';
CREATE UNIQUE INDEX data_keys_one_period ON data_keys (tenant_id, period) WHERE kind = 'period';
