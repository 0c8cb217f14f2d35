-- Storage per event (bench/bench_footprint.py), three changes that keep every query on an index:
--
-- * payloads loses key_ids. The entry bytes already hold the key ids (the header's `key_ids`,
--   hashed into the log), and payload_keys lists them per payload for erasure and retention. A
--   payload row of a ~1 KiB event (24-byte nonce, ~710-byte ciphertext) was ~830 bytes, four to a
--   4 KiB page; without the ~72-byte JSON array it is ~760, five to a page (1,027 -> ~820 bytes
--   per event). A STRICT table cannot drop a column that a CHECK names: the table is rebuilt, in
--   log order.
-- * subject_index becomes WITHOUT ROWID: the rows are small and their primary key was a second
--   copy of them (sqlite_autoindex_subject_index_1, ~68 bytes per row). Its index on key_id goes:
--   every row's key_id is a key of the row's subject_ref (the projector writes them from
--   data_keys), so erasure finds the rows by subject_ref alone.
-- * entries_event (tenant_id, event_id) goes: a lookup by event id names the tenant's logs and
--   is served by UNIQUE (log_id, event_id) (sqlite_autoindex_entries_2), as PostgreSQL's is.
--
-- On a large database the rebuilds rewrite both tables once; the file keeps its size until a
-- VACUUM (the freed pages are reused by later appends).

CREATE TABLE payloads_compact (
    log_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    tenant_id   TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    PRIMARY KEY (log_id, idx)
) STRICT;
INSERT INTO payloads_compact (log_id, idx, tenant_id, nonce, ciphertext)
    SELECT log_id, idx, tenant_id, nonce, ciphertext FROM payloads ORDER BY log_id, idx;
DROP TABLE payloads;
ALTER TABLE payloads_compact RENAME TO payloads;

CREATE TABLE subject_index_compact (
    tenant_id   TEXT NOT NULL,
    subject_ref BLOB NOT NULL,
    key_id      TEXT NOT NULL,
    log_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, subject_ref, log_id, idx)
) STRICT, WITHOUT ROWID;
INSERT INTO subject_index_compact (tenant_id, subject_ref, key_id, log_id, idx, occurred_at)
    SELECT tenant_id, subject_ref, key_id, log_id, idx, occurred_at FROM subject_index;
DROP TABLE subject_index;
ALTER TABLE subject_index_compact RENAME TO subject_index;

DROP INDEX entries_event;
