-- Storage per event (bench/bench_footprint.py).
--
-- * entries_session is keyed on (tenant_id, session_id) alone. With idx in the key every entry
--   was its own index tuple, and the sessions' interleaved appends split pages in the middle
--   (half full): ~67 bytes per entry. Without it the entries of a session are equal keys, which
--   B-tree deduplication keeps as one tuple with a list of row pointers (in heap order, which is
--   log order): ~13 bytes per entry. The session timeline reads a session's entries by this
--   index and sorts them by (occurred_at, log_id, idx) as it did before (the index never gave
--   that order). The new index is built before the old one goes.
-- * The primary keys of entries and payloads grow only at the end of each log: their pages are
--   filled whole (fillfactor 100) rather than to 90 %. It takes effect for pages split from now
--   on; a REINDEX packs the pages already written.

CREATE INDEX entries_session_dedup ON entries (tenant_id, session_id) WHERE session_id IS NOT NULL;
DROP INDEX entries_session;
ALTER INDEX entries_session_dedup RENAME TO entries_session;

ALTER INDEX entries_pkey SET (fillfactor = 100);
ALTER INDEX payloads_pkey SET (fillfactor = 100);
