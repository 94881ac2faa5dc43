-- 005: each domain's issuer key lives with the domain, sealed (AES-256-GCM) under the
-- key-encryption key that every key-server node reads from its issuer_kek_file, so that
-- nodes keep no state of their own.
ALTER TABLE domains ADD COLUMN issuer_key_sealed text;
