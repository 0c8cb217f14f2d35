-- The erasure and retention events of a log (GET /v1/logs/{log}/erasures, which explain missing
-- payloads to auditors) were found by reading every entry of the log. They are few; this partial
-- index holds only them, so the listing reads those rows alone, and an append pays for the index
-- only when it is one of them.
CREATE INDEX entries_system_events ON entries (log_id, idx) WHERE type IN ('erasure', 'retention');
