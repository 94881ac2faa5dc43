-- 007: the rows that authorise an issuance carry a seal, an HMAC that only the key
-- server's signer process can make (its key derives from the issuer KEK).  A row
-- written by anyone else, such as a compromised HTTPS process holding the database
-- password, authorises nothing (PROTOCOL.md §13).
--   domains.signer_seal       binds the name to its root and issuer certificates
--   admin_tokens.seal         binds an admin token to its domain's issuer
--   enroll_tokens.seal        binds an enrollment token to its address and expiry
-- signer_state records that the rows of a database older than the seals were sealed
-- once, by the first signer that started on it.
ALTER TABLE domains ADD COLUMN signer_seal text;
ALTER TABLE admin_tokens ADD COLUMN seal text;
ALTER TABLE enroll_tokens ADD COLUMN seal text;
CREATE TABLE signer_state (
	name       text PRIMARY KEY,
	value      text NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
