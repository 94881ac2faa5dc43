-- 004: anchor-reputation: reporters, reports, per-reporter evidence per subject, subject
-- summaries (also the federation feed), delisting requests and their audit trail, federation
-- peers and what was imported from them.  Every name starts with rep_.
--
-- Weights decay: a stored sum s with reference time t (unix seconds) is worth
-- s * 2^(-(now - t) / half_life) at time now (reputation/score.c).  Secrets (ARF tokens) are
-- stored as the hex SHA-256 of the secret only.

-- sum decayed by dt seconds; 0 once it is negligible (float8 arithmetic in PostgreSQL
-- raises an error on underflow, which this keeps away).
CREATE FUNCTION rep_decay(s double precision, dt double precision, half_life double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN dt <= 0 THEN s
		    WHEN s < 1e-12 OR dt / half_life > 40 THEN 0
		    ELSE s * power(2::double precision, -dt / half_life) END
$$;

CREATE TABLE rep_reporters (
	domain            text PRIMARY KEY CHECK (domain = lower(domain) AND length(domain) <= 253),
	standing          double precision,        -- NULL: the configured standing_default
	agreements        integer NOT NULL DEFAULT 0,
	disagreements     integer NOT NULL DEFAULT 0,
	reports           bigint NOT NULL DEFAULT 0,
	arf_token_hash    text UNIQUE CHECK (length(arf_token_hash) = 64),
	arf_registered_at timestamptz,
	first_seen        timestamptz NOT NULL DEFAULT now(),
	last_seen         timestamptz NOT NULL DEFAULT now(),
	standing_updated  timestamptz
);

CREATE TABLE rep_reports (
	id           bigserial PRIMARY KEY,
	reporter     text NOT NULL REFERENCES rep_reporters (domain),
	report_id    text NOT NULL CHECK (length(report_id) BETWEEN 1 AND 127),
	category     text NOT NULL CHECK (category IN ('spam', 'phishing', 'malware', 'abuse',
						    'not-spam', 'auth-fail')),
	observed     timestamptz NOT NULL,
	received     timestamptz NOT NULL DEFAULT now(),
	subjects     text[] NOT NULL CHECK (cardinality(subjects) BETWEEN 1 AND 8),
	verified     boolean NOT NULL,
	evidence     text NOT NULL DEFAULT '',
	source       text NOT NULL CHECK (source IN ('jws', 'arf')),
	reporter_net text NOT NULL DEFAULT '',
	raw          text,                         -- the JWS or ARF message, for disputes
	UNIQUE (reporter, report_id)
);

-- Which reports are about which subject (the evidence ids of an answer).
CREATE TABLE rep_report_subjects (
	subject text NOT NULL,
	report  bigint NOT NULL REFERENCES rep_reports (id) ON DELETE CASCADE,
	PRIMARY KEY (subject, report)
);

-- One reporter's decayed evidence about one subject: what the caps apply to.  reporter is
-- a domain of rep_reporters, or 'peer:<domain>' for a federation peer's imported evidence.
CREATE TABLE rep_contrib (
	subject    text NOT NULL,
	reporter   text NOT NULL,
	net        text NOT NULL DEFAULT '',
	bad        double precision NOT NULL DEFAULT 0 CHECK (bad >= 0),
	good       double precision NOT NULL DEFAULT 0 CHECK (good >= 0),
	t          bigint NOT NULL,                -- reference time of bad and good
	categories integer NOT NULL DEFAULT 0,     -- bit (1 << category) of each seen
	reports    bigint NOT NULL DEFAULT 0,
	first_seen timestamptz NOT NULL,
	last_seen  timestamptz NOT NULL,
	PRIMARY KEY (subject, reporter)
);
CREATE INDEX rep_contrib_reporter ON rep_contrib (reporter);

-- The summary of a subject as of its last change; seq orders the federation feed.
CREATE SEQUENCE rep_feed_seq;
CREATE TABLE rep_subject_scores (
	subject       text PRIMARY KEY,
	score         double precision NOT NULL,
	ci_low        double precision NOT NULL,
	ci_high       double precision NOT NULL,
	bad           double precision NOT NULL,  -- all evidence, capped and weighted, as of t
	good          double precision NOT NULL,
	local_bad     double precision NOT NULL,  -- the same without imported evidence (the feed)
	local_good    double precision NOT NULL,
	t             bigint NOT NULL,
	verdict       text NOT NULL CHECK (verdict IN ('trusted', 'known', 'unknown', 'block')),
	reports       bigint NOT NULL,
	reporters     integer NOT NULL,
	first_seen    timestamptz,
	last_seen     timestamptz,
	updated       timestamptz NOT NULL DEFAULT now(),
	seq           bigint NOT NULL UNIQUE,
	delisted_at   timestamptz,
	delist_request bigint
);

CREATE TABLE rep_delist_requests (
	id            bigserial PRIMARY KEY,
	subject       text NOT NULL,
	method        text NOT NULL CHECK (method IN ('signature', 'csa')),
	proven_by     text NOT NULL,               -- signer name or "HELO from IP"
	proof         text NOT NULL,               -- the JWS, or the CSA result as JSON
	reason        text NOT NULL DEFAULT '',
	contact       text NOT NULL DEFAULT '',    -- not shown in the public trail
	score_at_request jsonb NOT NULL,
	status        text NOT NULL DEFAULT 'pending'
		      CHECK (status IN ('pending', 'delisted', 'rejected')),
	created       timestamptz NOT NULL DEFAULT now(),
	decided       timestamptz,
	decision_note text
);
CREATE INDEX rep_delist_subject ON rep_delist_requests (subject);

-- Append-only: what happened to each request, for anyone to read.
CREATE TABLE rep_delist_events (
	id      bigserial PRIMARY KEY,
	request bigint NOT NULL REFERENCES rep_delist_requests (id),
	event   text NOT NULL CHECK (event IN ('requested', 'delisted', 'rejected')),
	at      timestamptz NOT NULL DEFAULT now(),
	detail  text NOT NULL DEFAULT ''
);

CREATE TABLE rep_federation_peers (
	domain     text PRIMARY KEY,
	url        text NOT NULL,
	weight     double precision NOT NULL,
	cursor     bigint NOT NULL DEFAULT 0,
	imported   bigint NOT NULL DEFAULT 0,
	last_poll  timestamptz,
	last_ok    timestamptz,
	last_error text
);

-- The last change imported per peer and subject, as the peer signed it (provenance).
CREATE TABLE rep_federation_imports (
	peer        text NOT NULL REFERENCES rep_federation_peers (domain),
	subject     text NOT NULL,
	peer_seq    bigint NOT NULL,
	bad         double precision NOT NULL,
	good        double precision NOT NULL,
	t           bigint NOT NULL,
	verdict     text NOT NULL,
	reporters   integer NOT NULL,
	imported_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (peer, subject)
);
