-- 011: encryption certificates separate from signing ones, one per device, their proof
-- of possession (a challenge encrypted to the key), and the domain's encryption
-- requirement (PROTOCOL.md §4.1, §5.2).

-- An encryption certificate is a user certificate of purpose 'encryption' for one
-- device of the address; the other purposes have no device.
ALTER TABLE certificates DROP CONSTRAINT certificates_purpose_check;
ALTER TABLE certificates ADD CONSTRAINT certificates_purpose_check
	CHECK (purpose IN ('smime', 'mta', 'keyserver', 'signing', 'encryption'));
ALTER TABLE certificates ADD COLUMN device text;
ALTER TABLE certificates ADD CONSTRAINT certificates_device_only_encryption
	CHECK ((purpose = 'encryption') = (device IS NOT NULL));
-- At most one current certificate per name, purpose and device.
DROP INDEX certificates_one_current;
CREATE UNIQUE INDEX certificates_one_current
	ON certificates (domain_id, name, purpose, COALESCE(device, ''))
	WHERE status = 'current';

-- A pending proof of possession: a random nonce encrypted to public_key; the answer's
-- SHA-256 (hex) is kept, never the nonce.  Used once, short-lived.
CREATE TABLE enc_challenges (
	id          uuid PRIMARY KEY,
	domain_id   bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	address     text NOT NULL,
	device      text NOT NULL,
	public_key  text NOT NULL,
	answer_hash text NOT NULL,
	expires_at  timestamptz NOT NULL,
	used        boolean NOT NULL DEFAULT false
);
CREATE INDEX enc_challenges_by_expiry ON enc_challenges (expires_at);

-- What a sender's relay must do with mail to the domain (the relay reads it later).
ALTER TABLE domains ADD COLUMN encryption text NOT NULL DEFAULT 'none'
	CHECK (encryption IN ('none', 'opportunistic', 'required'));
