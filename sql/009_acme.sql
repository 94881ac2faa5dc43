-- 009: ACME (RFC 8555) for the hosts of the domains a key server serves (PROTOCOL.md §5.4).
--   acme_nonces     the Replay-Nonce values handed out: each is deleted when a request uses
--                   it, so a replay finds none on any node; expired ones are swept
--   acme_accounts   one per (domain, account key): the key's JWK and its RFC 7638 thumbprint
--   acme_orders     one name per order, with its one authorisation (http-01 or dns-01,
--                   one token) and, once issued, the certificate's key id
-- revocations.method gains 'acme': revoked through ACME's revokeCert by the account that
-- ordered the certificate (a revocation signed by the certificate's own key stays 'key').
CREATE TABLE acme_nonces (
	nonce      text PRIMARY KEY CHECK (length(nonce) <= 64),
	expires_at timestamptz NOT NULL
);
CREATE INDEX acme_nonces_expiry ON acme_nonces (expires_at);

CREATE TABLE acme_accounts (
	id         uuid PRIMARY KEY,
	domain_id  bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	thumbprint text NOT NULL CHECK (length(thumbprint) = 43),
	jwk        text NOT NULL,
	contact    text NOT NULL DEFAULT '[]',
	status     text NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'deactivated')),
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (domain_id, thumbprint)
);

CREATE TABLE acme_orders (
	id           uuid PRIMARY KEY,
	account_id   uuid NOT NULL REFERENCES acme_accounts (id) ON DELETE CASCADE,
	domain_id    bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	name         text NOT NULL CHECK (name = lower(name) AND length(name) <= 253),
	purpose      text NOT NULL CHECK (purpose IN ('mta', 'keyserver')),
	status       text NOT NULL DEFAULT 'pending'
	             CHECK (status IN ('pending', 'ready', 'processing', 'valid', 'invalid')),
	expires_at   timestamptz NOT NULL,
	token        text NOT NULL CHECK (length(token) = 43),
	authz_status text NOT NULL DEFAULT 'pending'
	             CHECK (authz_status IN ('pending', 'valid', 'invalid')),
	chall_type   text CHECK (chall_type IN ('http-01', 'dns-01')),
	validated_at timestamptz,
	error        text,
	key_id       uuid,
	created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acme_orders_by_account ON acme_orders (account_id, created_at);
CREATE INDEX acme_orders_by_domain ON acme_orders (domain_id, created_at);
CREATE INDEX acme_orders_by_key ON acme_orders (key_id) WHERE key_id IS NOT NULL;

ALTER TABLE revocations DROP CONSTRAINT revocations_method_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_method_check
	CHECK (method IN ('key', 'secret', 'admin', 'acme'));
