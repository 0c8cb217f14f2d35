-- API-key labels become the gateway_id stamped in clear into every event a gateway key sends
-- (DESIGN sections 3 and 7), so they are identifiers, never free text that could hold a name.
ALTER TABLE api_keys ADD CONSTRAINT api_keys_label_format
    CHECK (label ~ '^([a-z0-9][a-z0-9._-]{0,62})?$');
-- Listing a tenant's keys in creation order without a sort.
DROP INDEX api_keys_tenant;
CREATE INDEX api_keys_tenant_created ON api_keys (tenant_id, created_at, key_id);
