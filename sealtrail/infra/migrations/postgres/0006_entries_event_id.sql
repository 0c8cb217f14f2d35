-- Entries found by event id alone. The tlog-proof download (services/ledger/reader.py) and the
-- query service's call lookup (services/query/search.py) know an event id but not its log; with
-- UNIQUE (log_id, event_id) each such lookup read the whole index, O(n) in the log's size. The
-- same uniqueness with event_id first serves those lookups and the ledger's duplicate check
-- (log_id = $1 AND event_id = ANY($2)) alike, and costs the same to maintain on append
-- (bench/bench_pg_writes.py, variant unique_event_first). The new constraint is in place before
-- the old one goes, so uniqueness holds throughout.
ALTER TABLE entries ADD CONSTRAINT entries_event_id_log_id_key UNIQUE (event_id, log_id);
ALTER TABLE entries DROP CONSTRAINT entries_log_id_event_id_key;
