-- Ingest's changes to the tables of 0001 (DESIGN sections 3, 4 and 7).

-- API-key labels become the gateway_id stamped in clear into every event a gateway key sends,
-- so they are identifiers, never free text that could hold a name.
ALTER TABLE api_keys ADD CONSTRAINT api_keys_label_format
    CHECK (label ~ '^([a-z0-9][a-z0-9._-]{0,62})?$');
-- Listing a tenant's keys in creation order without a sort.
DROP INDEX api_keys_tenant;
CREATE INDEX api_keys_tenant_created ON api_keys (tenant_id, created_at, key_id);

-- Erasing a subject key must also cut the link from subject_ref to the key id (so the erased
-- id links to nothing): an erased subject key keeps its id as a tombstone but no subject_ref.
DO $$
DECLARE c text;
BEGIN
    SELECT conname INTO c FROM pg_constraint
     WHERE conrelid = 'data_keys'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%subject_ref IS NOT NULL%';
    EXECUTE format('ALTER TABLE data_keys DROP CONSTRAINT %I', c);
END
$$;
ALTER TABLE data_keys ADD CONSTRAINT data_keys_subject_ref
    CHECK (CASE WHEN kind = 'subject' THEN (subject_ref IS NOT NULL) = (state = 'active')
                ELSE subject_ref IS NULL END);
