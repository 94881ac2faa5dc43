/*
 * inbound_fields.c - the header fields of an inbound message that are the relay's own:
 * those a sender may not set (our Authentication-Results, our tier header,
 * Anchor-Partial, X-Anchor-Decrypted), removed, and the trace fields every message (or view) gets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mail/header.h"
#include "relayd.h"

/* An Authentication-Results field that claims to be ours (RFC 8601 §5: remove it).
 * end: just past the field's line end. */
static int forged_authres(const struct mail_field *f, const char *end, const char *authserv)
{
	const char *p = f->value;
	size_t n = strlen(authserv);

	if (!mail_field_is(f, "Authentication-Results"))
		return 0;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return (size_t)(end - p) >= n && strncasecmp(p, authserv, n) == 0 &&
	       (p + n == end || p[n] == ';' || p[n] == ' ' || p[n] == '\t' || p[n] == '\r');
}

/*
 * The message without the fields a sender may not set: our
 * Authentication-Results and our tier header.  malloc'd copy.  The fields are
 * lib/mail/header's, the ones the verifier reads.
 */
char *relayd_strip_our_fields(const char *m, size_t len, const char *authserv, const char *tierh,
                              size_t *outlen)
{
	struct mail_header h;
	struct mail_field f;
	size_t o = 0, start = 0;
	char *out = malloc(len + 1);

	if (out == NULL)
		return NULL;
	mail_header_init(&h, m, len);
	while (mail_header_next(&h, &f) == 1) {
		if (!forged_authres(&f, m + f.end, authserv) && !mail_field_is(&f, tierh) &&
		    !mail_field_is(&f, "Anchor-Partial") &&
		    !mail_field_is(&f, RELAYD_DECRYPTED_FIELD)) {
			memcpy(out + o, m + start, f.end - start);
			o += f.end - start;
		}
		start = f.end;
	}
	memcpy(out + o, m + h.pos, len - h.pos);
	o += len - h.pos;
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* The fields every part gets: Received and Authentication-Results. */
char *relayd_trace_fields(struct relayd_conn *c, const struct relay_auth *a)
{
	const struct relay_settings *s = c->d->s;
	const char *authserv = s->authserv_id ? s->authserv_id : s->hostname;
	char date[64], *ar, *out = NULL;
	struct err e = {0};

	relayd_rfc5322_date(time(NULL), date, sizeof(date));
	ar = relay_authres_field(authserv, a, c->ip, c->helo, c->rep_known ? c->rep.csa : "", &e);
	if (ar == NULL)
		return NULL;
	if (asprintf(&out,
	             "Received: from %s (%s [%s])\r\n\tby %s (anchor-relay) with %s;\r\n\t%s\r\n"
	             "%s\r\n",
	             c->helo[0] ? c->helo : "unknown", c->helo[0] ? c->helo : "unknown", c->ip,
	             s->hostname, c->tls ? "ESMTPS" : "ESMTP", date, ar) < 0)
		out = NULL;
	free(ar);
	return out;
}
