-- 006: erasure keeps a certificate's row without what ties it to the address.
-- An erased certificate keeps key_id, fingerprint, serial, its revocation and its log
-- sequence (the CRL needs the serial, the log its leaf); the address (name) and the
-- certificate itself (pem, whose SAN names the address) are gone, and so is the
-- revocation secret's hash, which has nothing left to revoke.  Every erased
-- certificate is revoked first, so the CRL keeps telling relying parties not to trust it.
ALTER TABLE certificates ALTER COLUMN name DROP NOT NULL;
ALTER TABLE certificates ALTER COLUMN pem DROP NOT NULL;
ALTER TABLE certificates ADD COLUMN erased_at timestamptz;
ALTER TABLE certificates ADD CONSTRAINT certificates_erased_blank CHECK (
	CASE WHEN erased_at IS NULL THEN name IS NOT NULL AND pem IS NOT NULL
	     ELSE name IS NULL AND pem IS NULL AND revocation_secret_hash IS NULL
		  AND status = 'revoked' END);
