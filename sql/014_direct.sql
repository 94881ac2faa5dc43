-- 014: direct endpoints: a user's own daemon, registered for a short while by a
-- request signed with the address's current key (PROTOCOL.md §6.5).  A row never
-- speaks by itself: every reader joins the key that made it, which must still be the
-- address's current, unrevoked key, and checks expires_at, so a registration dies
-- with its key and at its expiry even before anything deletes it.

CREATE TABLE direct_endpoints (
	domain_id  bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	address    text NOT NULL,
	key_id     uuid NOT NULL REFERENCES certificates (key_id) ON DELETE CASCADE,
	host       text NOT NULL,
	port       integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
	pin        text NOT NULL,
	expires_at timestamptz NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	log_seq    bigint,
	PRIMARY KEY (domain_id, address)
);
CREATE INDEX direct_endpoints_by_key ON direct_endpoints (key_id);
