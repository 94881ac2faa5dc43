/*
 * tls_optional.c - "TLS-Required: No" (RFC 8689 §5): a sender's request that
 * its message be delivered even when the recipient domain's TLS policy cannot
 * be met.  The relay honours it (without REQUIRETLS, which wins: §5) by
 * dropping the recipient side's policy from the message's hops: an anchored
 * server's pinned, TLS-required hop becomes an opportunistic one (STARTTLS
 * when offered, plain text when the handshake fails, the certificate not
 * checked).  The relay's own rule (outbound_tls = encrypt) and a user's direct
 * endpoint (whose pin is what its registration vouches for) stay as they are.
 *
 * The risk, for the sender who asks: an attacker on the path can strip
 * STARTTLS or present any certificate, read the message and, on an anchored
 * route, receive it in the recipient server's place.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/header.h"
#include "relay.h"

int relay_tls_required_no(const char *msg, size_t len)
{
	struct mail_field f;
	char *v;
	size_t n, a = 0;
	int no;

	if (!mail_header_find(msg, len, "TLS-Required", &f) ||
	    (v = mail_field_unfold(&f, &n)) == NULL)
		return 0;
	while (a < n && (v[a] == ' ' || v[a] == '\t'))
		a++;
	while (n > a && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	no = n - a == 2 && strncasecmp(v + a, "No", 2) == 0;
	free(v);
	return no;
}

void relay_hops_tls_optional(struct relay_hop *hops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (hops[i].tls_name[0] == '\0' || hops[i].pin[0] == '\0')
			continue; /* not an anchored server's policy */
		hops[i].tls_required = 0;
		hops[i].pin[0] = '\0';
		hops[i].tls_name[0] = '\0';
	}
}
