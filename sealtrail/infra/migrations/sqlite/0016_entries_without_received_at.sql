-- entries.received_at goes (SQLite). No query or index reads it: the ledger's checkpointer reads
-- the time ingest received a log's first unsigned entry (one row) from that entry's bytes, which
-- hold it in the header. A ~1 KiB event's entries row was ~825 bytes and four of them filled a
-- 4 KiB page; 28 bytes less puts five on a page (~1,020 -> ~820 bytes per event at 1,000,000
-- entries, bench/bench_footprint.py). SQLite rewrites each row once; the pages already written
-- are not repacked until a VACUUM. PostgreSQL keeps the column: 8 bytes there change no page.
ALTER TABLE entries DROP COLUMN received_at;
