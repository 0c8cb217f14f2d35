-- Console sessions in the database rather than in one process's memory (see the PostgreSQL
-- migration 0012): only SHA-256 hashes of the session id and of its CSRF token are stored.
CREATE TABLE console_sessions (
    session_hash BLOB PRIMARY KEY CHECK (length(session_hash) = 32),
    csrf_hash    BLOB NOT NULL CHECK (length(csrf_hash) = 32),
    tenant_id    TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    role         TEXT NOT NULL,
    label        TEXT NOT NULL,
    created_at   REAL NOT NULL,
    last_used_at REAL NOT NULL
) STRICT;
CREATE INDEX console_sessions_created ON console_sessions (created_at);
CREATE INDEX console_sessions_last_used ON console_sessions (last_used_at);

-- A released legal hold: the hold as it was set and the release (reason, who, when).
CREATE TABLE subject_hold_releases (
    tenant_id      TEXT NOT NULL REFERENCES tenants (tenant_id),
    history_ref    BLOB NOT NULL CHECK (length(history_ref) = 32),
    reason         TEXT NOT NULL,
    case_ref       TEXT,
    set_by         TEXT NOT NULL,
    set_at         TEXT NOT NULL,
    release_reason TEXT NOT NULL CHECK (length(release_reason) BETWEEN 1 AND 64 AND release_reason GLOB '[a-z]*'
                                        AND NOT release_reason GLOB '*[^a-z0-9_.-]*'),
    released_by    TEXT NOT NULL,
    released_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, history_ref, released_at)
) STRICT;
