-- 003: revocation, the per-domain transparency log (which is also the change feed),
-- and webhooks for subscribers.

-- A revoked certificate keeps its row; status says so.
ALTER TABLE certificates DROP CONSTRAINT certificates_status_check;
ALTER TABLE certificates ADD CONSTRAINT certificates_status_check
	CHECK (status IN ('current', 'superseded', 'revoked'));
-- The hash of the revocation secret handed to the user at enrollment (lost-key path).
ALTER TABLE certificates ADD COLUMN revocation_secret_hash text;
-- The log entry that recorded the issuance.
ALTER TABLE certificates ADD COLUMN log_seq bigint;

CREATE TABLE revocations (
	key_id     uuid PRIMARY KEY REFERENCES certificates (key_id) ON DELETE CASCADE,
	domain_id  bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	serial     text NOT NULL,
	reason     integer NOT NULL CHECK (reason IN (0, 1, 3, 4, 5, 9)),
	method     text NOT NULL CHECK (method IN ('key', 'secret', 'admin')),
	revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revocations_by_domain ON revocations (domain_id, revoked_at);

-- Every change of a domain, in order.  seq is the leaf index in the domain's Merkle
-- tree and the feed cursor.  leaf is the exact text hashed into the tree; it commits
-- to the subject's name only through SHA-256(salt || name), so erasing salt and name
-- (a user's erasure request) leaves the tree intact.
CREATE TABLE log_entries (
	domain_id  bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	seq        bigint NOT NULL CHECK (seq >= 0),
	type       text NOT NULL,
	key_id     uuid,
	leaf       text NOT NULL,
	leaf_hash  bytea NOT NULL CHECK (length(leaf_hash) = 32),
	salt       text,
	name       text,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (domain_id, seq)
);
CREATE INDEX log_entries_by_key ON log_entries (key_id) WHERE key_id IS NOT NULL;

-- Hashes of the perfect subtrees: level 0 are leaf hashes; (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level).  Proofs need O(log n) of them.
CREATE TABLE log_nodes (
	domain_id bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	level     integer NOT NULL CHECK (level BETWEEN 0 AND 63),
	idx       bigint NOT NULL CHECK (idx >= 0),
	hash      bytea NOT NULL CHECK (length(hash) = 32),
	PRIMARY KEY (domain_id, level, idx)
);

-- Signed tree heads, one per size reached.
CREATE TABLE tree_heads (
	domain_id  bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	size       bigint NOT NULL CHECK (size >= 1),
	root_hash  bytea NOT NULL CHECK (length(root_hash) = 32),
	jws        text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (domain_id, size)
);

-- Subscribers' webhooks: called for each event of the keys they watch.
CREATE TABLE webhooks (
	id          bigserial PRIMARY KEY,
	domain_id   bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	url         text NOT NULL,
	key_ids     uuid[] NOT NULL CHECK (cardinality(key_ids) BETWEEN 1 AND 1000),
	secret_hash text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
	webhook_id   bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	domain_id    bigint NOT NULL,
	seq          bigint NOT NULL,
	attempts     integer NOT NULL DEFAULT 0,
	next_attempt timestamptz NOT NULL DEFAULT now(),
	delivered_at timestamptz,
	last_error   text,
	PRIMARY KEY (webhook_id, seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt)
	WHERE delivered_at IS NULL;

-- The log entry that recorded a route's current state.
ALTER TABLE routes ADD COLUMN log_seq bigint;
