-- 008: anchor-reputation's public evidence ids.  An answer cites the reports behind a
-- verdict; citing them as "reporter/id" told a ring of reporters whom to contradict
-- (PROTOCOL.md §11.5).  Each report gets an opaque id instead: random, unrelated to the
-- reporter or its own id, told to the reporter in the answer to its report.
ALTER TABLE rep_reports ADD COLUMN public_id text;
UPDATE rep_reports SET public_id = 'ev-' || replace(gen_random_uuid()::text, '-', '')
	WHERE public_id IS NULL;
ALTER TABLE rep_reports ALTER COLUMN public_id SET NOT NULL,
	ALTER COLUMN public_id SET DEFAULT 'ev-' || replace(gen_random_uuid()::text, '-', '');
CREATE UNIQUE INDEX rep_reports_public_id ON rep_reports (public_id);
