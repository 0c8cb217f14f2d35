-- latency_ms may be a fraction of a millisecond (12.5, 0.042): the header holds a JSON number, and
-- its searchable copy in entries becomes double precision, which holds every value ingest accepts
-- (the IEEE 754 double the number denotes, up to 2^53-1) exactly. Whole values are unchanged. On a
-- large log this rewrites the entries table once.
ALTER TABLE entries ALTER COLUMN latency_ms TYPE double precision;
