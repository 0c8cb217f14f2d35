-- latency_ms may be a fraction of a millisecond (12.5, 0.042): its searchable copy in entries
-- becomes REAL, like PostgreSQL's double precision, which holds every value ingest accepts (the
-- IEEE 754 double the number denotes, up to 2^53-1) exactly. A STRICT table cannot change a
-- column's type in place: a REAL column takes the values and the name (latency_ms is in no index
-- or constraint). Whole values read back as the same numbers.
ALTER TABLE entries ADD COLUMN latency_ms_number REAL;
UPDATE entries SET latency_ms_number = latency_ms WHERE latency_ms IS NOT NULL;
ALTER TABLE entries DROP COLUMN latency_ms;
ALTER TABLE entries RENAME COLUMN latency_ms_number TO latency_ms;
