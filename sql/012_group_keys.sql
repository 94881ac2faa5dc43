-- 012: group and corporate encryption keys, held by the key server only wrapped
-- (PROTOCOL.md §5.5).  The admin's client makes the key pair of a group (or of the
-- corporate address), has its certificate issued like any encryption certificate
-- (device "group"), and uploads the private key once per member, each copy a CMS
-- EnvelopedData around the PKCS#8 DER, encrypted to that member's current encryption
-- certificates.  Nothing here can open a wrap: the key server never sees the clear key.

-- One generation of a group's key: the certificate it was issued as.  A new generation
-- is made when a member leaves (rotation); the old ones stay for the mail they opened.
CREATE TABLE group_keys (
	id            bigserial PRIMARY KEY,
	domain_id     bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	group_address text NOT NULL,
	generation    integer NOT NULL CHECK (generation > 0),
	key_id        uuid NOT NULL REFERENCES certificates (key_id) ON DELETE CASCADE,
	created_at    timestamptz NOT NULL DEFAULT now(),
	UNIQUE (domain_id, group_address, generation),
	UNIQUE (key_id)
);

-- A generation's private key for one member: base64 of the DER CMS (Auth)EnvelopedData,
-- opaque here.
CREATE TABLE group_key_wraps (
	group_key_id bigint NOT NULL REFERENCES group_keys (id) ON DELETE CASCADE,
	member       text NOT NULL,
	envelope     text NOT NULL,
	PRIMARY KEY (group_key_id, member)
);
CREATE INDEX group_key_wraps_by_member ON group_key_wraps (member);
