-- Console sessions, shared by every query process of a deployment: a session signed in through
-- one process is accepted by the others, and signing out ends it everywhere. Only SHA-256 hashes
-- of the session id (the cookie) and of its CSRF token are stored, so reading this table does not
-- let anyone act as a signed-in user. The principal's columns are the API key's (never the key).
CREATE TABLE console_sessions (
    session_hash bytea PRIMARY KEY CHECK (octet_length(session_hash) = 32),
    csrf_hash    bytea NOT NULL CHECK (octet_length(csrf_hash) = 32),
    tenant_id    text NOT NULL,
    key_id       text NOT NULL,
    role         text NOT NULL,
    label        text NOT NULL,
    created_at   double precision NOT NULL,  -- seconds since the epoch, the query processes' clocks
    last_used_at double precision NOT NULL
);
CREATE INDEX console_sessions_created ON console_sessions (created_at);
CREATE INDEX console_sessions_last_used ON console_sessions (last_used_at);

-- A legal hold that was released: the hold as it was set (reason, case, who, when) and the
-- release (reason, who, when). The live hold stays in subject_holds until it is released.
CREATE TABLE subject_hold_releases (
    tenant_id      text NOT NULL REFERENCES tenants (tenant_id),
    history_ref    bytea NOT NULL CHECK (octet_length(history_ref) = 32),
    reason         text NOT NULL,
    case_ref       text,
    set_by         text NOT NULL,
    set_at         timestamptz NOT NULL,
    release_reason text NOT NULL CHECK (release_reason ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    released_by    text NOT NULL,
    released_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, history_ref, released_at)
);
GRANT SELECT ON subject_hold_releases TO sealtrail_reader;
ALTER TABLE subject_hold_releases ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_subject_hold_releases ON subject_hold_releases TO sealtrail_reader
    USING (tenant_id = current_setting('sealtrail.tenant', true));
