-- 002: routes: where mail for an address (or a whole domain) must go.
-- name is the address, or the domain name itself for the domain's default route.

CREATE TABLE routes (
	id         bigserial PRIMARY KEY,
	domain_id  bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	name       text NOT NULL,
	kind       text NOT NULL CHECK (kind IN ('servers', 'alias')),
	servers    jsonb,
	alias      text,
	ttl        integer NOT NULL CHECK (ttl BETWEEN 60 AND 86400),
	set_by     text NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (domain_id, name),
	CHECK ((kind = 'servers') = (servers IS NOT NULL)),
	CHECK ((kind = 'alias') = (alias IS NOT NULL))
);

-- Requests signed by a user's key carry their signing time; the newest accepted
-- one per key is kept so that a captured request cannot be replayed.
CREATE TABLE key_requests (
	key_id      uuid PRIMARY KEY,
	last_issued timestamptz NOT NULL
);
