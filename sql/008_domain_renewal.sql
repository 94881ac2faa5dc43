-- 008: a domain's own limits on renewal by the current key (PROTOCOL.md §5.3), set by
-- its admin (PUT /v1/domains/{d}/renewal).  NULL: the key server's setting
-- (renew_window, renew_min_interval, renew_max_lifetime), which also bounds the
-- domain's: a domain may only be stricter.  Seconds.
ALTER TABLE domains
	ADD COLUMN renew_window bigint CHECK (renew_window > 0),
	ADD COLUMN renew_min_interval bigint CHECK (renew_min_interval >= 0),
	ADD COLUMN renew_max_lifetime bigint CHECK (renew_max_lifetime >= 86400);
