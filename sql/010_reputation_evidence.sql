-- 010: anchor-reputation's public evidence ids, verified signatures, ground truth.  An answer cites the reports behind a
-- verdict; citing them as "reporter/id" told a ring of reporters whom to contradict
-- (PROTOCOL.md §11.5).  Each report gets an opaque id instead: random, unrelated to the
-- reporter or its own id, told to the reporter in the answer to its report.
ALTER TABLE rep_reports ADD COLUMN public_id text;
UPDATE rep_reports SET public_id = 'ev-' || replace(gen_random_uuid()::text, '-', '')
	WHERE public_id IS NULL;
ALTER TABLE rep_reports ALTER COLUMN public_id SET NOT NULL,
	ALTER COLUMN public_id SET DEFAULT 'ev-' || replace(gen_random_uuid()::text, '-', '');
CREATE UNIQUE INDEX rep_reports_public_id ON rep_reports (public_id);

-- A DKIM signature this service verified in a report's quoted message, as evidence about a
-- subject: it counts once, for the first report that brought it, however many reporters
-- quote the same message (reputation/evidence.c).  sig is the hex SHA-256 of b=.
CREATE TABLE rep_evidence_signatures (
	subject text NOT NULL,
	sig     text NOT NULL CHECK (length(sig) = 64),
	report  bigint NOT NULL REFERENCES rep_reports (id) ON DELETE CASCADE,
	PRIMARY KEY (subject, sig)
);

-- Ground truth: subjects the operator's spamtraps caught (a vetted reporter's report with
-- "trap" naming a configured spamtrap).  They are listed whatever the reporters say, and
-- reporters' standing is judged against them (reputation/truth.c).
CREATE TABLE rep_ground_truth (
	subject     text PRIMARY KEY,
	hits        bigint NOT NULL DEFAULT 1,
	first_hit   timestamptz NOT NULL DEFAULT now(),
	last_hit    timestamptz NOT NULL DEFAULT now(),
	last_report bigint REFERENCES rep_reports (id) ON DELETE SET NULL
);
