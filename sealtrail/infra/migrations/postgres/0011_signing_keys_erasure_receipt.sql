-- The query service records its erasure-receipt key beside ingest's receipt key, so that each of
-- the two refuses to start with the other's key whichever of them starts first (each signs its own
-- kind of receipt; a key signing both would make one kind pass for the other).
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_purpose_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_purpose_check
    CHECK (purpose IN ('checkpoint', 'cosign', 'receipt', 'erasure-receipt'));
