-- 001: key server core: domains, admin and enrollment tokens, certificates, groups.
-- Secrets (tokens) are stored only as the hex SHA-256 of the secret.

CREATE TABLE domains (
	id                bigserial PRIMARY KEY,
	name              text NOT NULL UNIQUE CHECK (name = lower(name) AND length(name) <= 253),
	root_pem          text NOT NULL,
	issuer_pem        text NOT NULL,
	pins              text[] NOT NULL CHECK (cardinality(pins) >= 1),
	policy            text NOT NULL DEFAULT 'isp' CHECK (policy IN ('isp', 'corporate', 'groups')),
	mode              text NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'testing')),
	corporate_address text,
	created_at        timestamptz NOT NULL DEFAULT now(),
	updated_at        timestamptz NOT NULL DEFAULT now(),
	CHECK (policy <> 'corporate' OR corporate_address IS NOT NULL)
);

CREATE TABLE admin_tokens (
	id         bigserial PRIMARY KEY,
	domain_id  bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	token_hash text NOT NULL UNIQUE CHECK (length(token_hash) = 64),
	created_at timestamptz NOT NULL DEFAULT now(),
	revoked_at timestamptz
);

CREATE TABLE enroll_tokens (
	id         bigserial PRIMARY KEY,
	domain_id  bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	token_hash text NOT NULL UNIQUE CHECK (length(token_hash) = 64),
	address    text NOT NULL,
	expires_at timestamptz NOT NULL,
	used_at    timestamptz,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE certificates (
	id            bigserial PRIMARY KEY,
	key_id        uuid NOT NULL UNIQUE,
	domain_id     bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	kind          text NOT NULL CHECK (kind IN ('user', 'server')),
	purpose       text NOT NULL CHECK (purpose IN ('smime', 'mta', 'keyserver', 'signing')),
	name          text NOT NULL,
	algorithm     text NOT NULL,
	fingerprint   text NOT NULL UNIQUE,
	serial        text NOT NULL,
	pem           text NOT NULL,
	not_before    timestamptz NOT NULL,
	not_after     timestamptz NOT NULL,
	status        text NOT NULL DEFAULT 'current' CHECK (status IN ('current', 'superseded')),
	issued_at     timestamptz NOT NULL DEFAULT now(),
	superseded_at timestamptz,
	superseded_by uuid
);

-- Exact-match lookups by name; at most one current certificate per name and purpose.
CREATE INDEX certificates_by_name ON certificates (domain_id, name, issued_at DESC);
CREATE UNIQUE INDEX certificates_one_current ON certificates (domain_id, name, purpose)
	WHERE status = 'current';

-- Encryption groups: each member belongs to at most one group of its domain.
CREATE TABLE group_members (
	domain_id     bigint NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
	group_address text NOT NULL,
	member        text NOT NULL,
	PRIMARY KEY (domain_id, member)
);
CREATE INDEX group_members_by_group ON group_members (domain_id, group_address);
