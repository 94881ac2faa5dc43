-- 016: ACME challenges are validated off the request (RFC 8555 §7.5.1, PROTOCOL.md §5.4).
-- A challenge POST marks the authorisation 'processing' and answers at once; the key
-- server's validation threads (any node) claim such rows for a lease, validate, and record
-- valid or invalid.  A claim whose node died runs out and is taken again, a few times at
-- most, so no authorisation stays 'processing'.
--   validation_claimed_until  the lease of the node validating it (NULL: not claimed yet)
--   validation_attempts       claims so far
--   error_type                the ACME error type of a failed validation (connection, dns,
--                             incorrectResponse, serverInternal), shown in the challenge
ALTER TABLE acme_orders DROP CONSTRAINT acme_orders_authz_status_check;
ALTER TABLE acme_orders ADD CONSTRAINT acme_orders_authz_status_check
	CHECK (authz_status IN ('pending', 'processing', 'valid', 'invalid'));
ALTER TABLE acme_orders ADD COLUMN validation_claimed_until timestamptz;
ALTER TABLE acme_orders ADD COLUMN validation_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE acme_orders ADD COLUMN error_type text;
CREATE INDEX acme_orders_processing ON acme_orders (account_id)
	WHERE authz_status = 'processing';
