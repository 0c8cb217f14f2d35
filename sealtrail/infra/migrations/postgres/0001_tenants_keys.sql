-- Tenants, API keys and the data keys that seal payloads (DESIGN sections 4 and 7).

CREATE TABLE tenants (
    tenant_id        text PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- The tenant index key (BLAKE3 key for subject_ref), wrapped by the KEK.
    index_key        bytea NOT NULL,
    index_key_kek    text NOT NULL,
    -- Payload retention in whole UTC months; NULL keeps payloads until erased.
    retention_months int CHECK (retention_months IS NULL OR retention_months > 0)
);

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
    role        text NOT NULL CHECK (role IN ('gateway', 'investigator', 'dpo', 'auditor', 'operator')),
    -- SHA-256 of the secret part of the token; the token itself is shown once and never stored.
    secret_hash bytea NOT NULL,
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Subject keys (one active per tenant and subject_ref) and period keys (one per tenant and UTC month).
-- Lifecycle: active -> erased (terminal). Erasing clears the wrapped secret for good.
CREATE TABLE data_keys (
    key_id      text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
    kind        text NOT NULL CHECK (kind IN ('subject', 'period')),
    subject_ref bytea,
    period      text CHECK (period IS NULL OR period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    wrapped     bytea,
    kek_id      text,
    state       text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'erased')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    CHECK ((kind = 'subject') = (subject_ref IS NOT NULL)),
    CHECK ((kind = 'period') = (period IS NOT NULL)),
    CHECK ((state = 'active') = (wrapped IS NOT NULL))
);
-- Concurrent creators converge: at most one active key per subject, one key per period ever.
CREATE UNIQUE INDEX data_keys_one_active_subject ON data_keys (tenant_id, subject_ref)
    WHERE kind = 'subject' AND state = 'active';
CREATE UNIQUE INDEX data_keys_one_period ON data_keys (tenant_id, period) WHERE kind = 'period';
