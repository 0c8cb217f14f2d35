-- Announce every data key that stops being active (a subject's erasure, a period's expiry) on the
-- channel `sealtrail_key_erased`, so that the services caching keys (ingest, query) drop it at once
-- instead of when their cache entry expires (sealtrail/infra/keyerasures.py). A trigger, so that no
-- path that erases a key can forget to announce it. NOTIFY is transactional: listeners hear of it
-- when, and only if, the erasure commits. The payload names the tenant and the random key id,
-- nothing personal.
CREATE FUNCTION sealtrail_announce_key_erased() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sealtrail_key_erased',
                      json_build_object('tenant', NEW.tenant_id, 'key_id', NEW.key_id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER data_keys_announce_erased AFTER UPDATE OF state ON data_keys FOR EACH ROW
    WHEN (OLD.state = 'active' AND NEW.state <> 'active')
    EXECUTE FUNCTION sealtrail_announce_key_erased();
