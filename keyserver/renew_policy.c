/*
 * renew_policy.c - the payload of a renewal request and the limits on
 * renewal (renew_policy.h).  Pure functions: the signer (issue.c) passes the
 * certificate's dates and the clock.
 */
#include "payload.h"
#include "renew_policy.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define DAY 86400LL

/* An RFC 3339 UTC rendering of t, for messages. */
static void when(long long t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%lld", t);
}

int ks_renew_request_parse(const json_t *p, long long now, struct ks_renew_request *out,
                           struct err *e)
{
	static const char *const known[] = {"type", "name", "purpose", "csr", "issued"};
	const char *type = ks_payload_str(p, "type");
	long long ms;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(p))
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed payload is not a JSON object");
	if (type == NULL || strcmp(type, KS_RENEW_TYPE) != 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "the signed payload must have type " KS_RENEW_TYPE);
	/* Only the members the request has: an unknown one is a client bug, said early. */
	if (ks_payload_only(p, known, sizeof(known) / sizeof(known[0]), "renewal", e) < 0)
		return -1;
	out->name = ks_payload_str(p, "name");
	out->purpose = ks_payload_str(p, "purpose");
	out->csr = ks_payload_str(p, "csr");
	if (out->name == NULL || out->purpose == NULL || out->csr == NULL)
		return err_set(e, ERR_INPUT, "bad_request",
		               "the renewal request needs \"name\", \"purpose\" and \"csr\" as "
		               "strings");
	if (ks_payload_issued(p, now, &ms, e) < 0)
		return -1;
	out->issued = ms / 1000;
	return 0;
}

long long ks_renew_window(const struct ks_renew_policy *p, const struct ks_renew_state *s)
{
	long long life = s->not_after - s->not_before;
	long long w = p->window > 0 ? p->window : (life > 0 ? life / 3 : 0);

	return p->own_window > 0 && p->own_window < w ? p->own_window : w;
}

int ks_renew_check(const struct ks_renew_policy *p, const struct ks_renew_state *s, struct err *e)
{
	long long opens = s->not_after - ks_renew_window(p, s);
	long long again = s->issued_at + p->min_interval;
	char t[32];

	if (s->now >= s->not_after) {
		when(s->not_after, t);
		return err_set(e, ERR_FORBIDDEN, "cert_expired",
		               "the certificate expired at %s: an expired key renews nothing; "
		               "enroll again with a token from the domain admin",
		               t);
	}
	if (s->now < opens) {
		when(opens, t);
		return err_set(e, ERR_CONFLICT, "renew_too_early",
		               "the certificate may be renewed from %s (%lld seconds before it "
		               "expires), not yet",
		               t, s->not_after - opens);
	}
	if (s->now < again) {
		when(again, t);
		return err_set(e, ERR_RATE, "renew_too_often",
		               "the certificate was issued less than %lld seconds ago; it may be "
		               "renewed from %s",
		               p->min_interval, t);
	}
	return 0;
}

int ks_renew_days(const struct ks_renew_policy *p)
{
	long long days = p->cert_days;

	if (p->max_lifetime > 0 && p->max_lifetime / DAY < days)
		days = p->max_lifetime / DAY;
	return days < 1 ? 1 : (int)days;
}

/* The server's longest lifetime of a renewed certificate, in seconds. */
static long long server_max_lifetime(const struct ks_renew_policy *s)
{
	return (long long)ks_renew_days(s) * DAY;
}

void ks_renew_policy_for(const struct ks_renew_policy *server, const struct ks_renew_limits *dom,
                         struct ks_renew_policy *out)
{
	*out = *server;
	/* The server's window may be "a third of the lifetime" (0), known only per
	 * certificate: ks_renew_window takes the shorter of the two there. */
	out->own_window = dom->window > 0 ? dom->window : 0;
	if (dom->min_interval > server->min_interval)
		out->min_interval = dom->min_interval;
	if (dom->max_lifetime >= DAY && dom->max_lifetime < server_max_lifetime(server))
		out->max_lifetime = dom->max_lifetime;
}

int ks_renew_limits_check(const struct ks_renew_policy *server, const struct ks_renew_limits *dom,
                          struct err *e)
{
	const long long most = 825 * DAY;

	if (dom->window != KS_RENEW_UNSET && (dom->window < 1 || dom->window > most))
		return err_set(e, ERR_INPUT, "renew_limit",
		               "window: between 1 second and 825 days, in seconds");
	if (dom->window != KS_RENEW_UNSET && server->window > 0 && dom->window > server->window)
		return err_set(e, ERR_INPUT, "renew_limit",
		               "window: at most %lld seconds on this key server (renew_window)",
		               server->window);
	if (dom->min_interval != KS_RENEW_UNSET &&
	    (dom->min_interval < 0 || dom->min_interval > most))
		return err_set(e, ERR_INPUT, "renew_limit",
		               "min_interval: between 0 and 825 days, in seconds");
	if (dom->min_interval != KS_RENEW_UNSET && dom->min_interval < server->min_interval)
		return err_set(e, ERR_INPUT, "renew_limit",
		               "min_interval: at least %lld seconds on this key server "
		               "(renew_min_interval)",
		               server->min_interval);
	if (dom->max_lifetime != KS_RENEW_UNSET &&
	    (dom->max_lifetime < DAY || dom->max_lifetime > most))
		return err_set(e, ERR_INPUT, "renew_limit",
		               "max_lifetime: between 1 and 825 days, in seconds");
	if (dom->max_lifetime != KS_RENEW_UNSET && dom->max_lifetime > server_max_lifetime(server))
		return err_set(e, ERR_INPUT, "renew_limit",
		               "max_lifetime: at most %lld seconds on this key server "
		               "(renew_max_lifetime, cert_days)",
		               server_max_lifetime(server));
	return 0;
}
