/*
 * fuzz_relay_headers.c - the header side of inbound verification, no network:
 * the message splitter, the From: parser (on the whole input, on the message,
 * on each From: field), every DKIM-Signature value, and the
 * Authentication-Results field written over a synthetic verdict made of what
 * the input says (domains, selectors, identities, reasons, the authserv-id).
 * The field must stay one well-formed header field whatever went in.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim.h"
#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SIGS 8

/* One header field: CRLF only as a fold (followed by a blank), printable ASCII. */
static void check_field(const char *f)
{
	if (strncmp(f, "Authentication-Results:", 23) != 0)
		__builtin_trap();
	for (const char *p = f; *p; p++) {
		if (*p == '\r') {
			if (p[1] != '\n' || (p[2] != ' ' && p[2] != '\t'))
				__builtin_trap();
			p++;
		} else if (*p == '\n' || ((unsigned char)*p < 0x20 && *p != '\t') ||
		           (unsigned char)*p >= 0x7f) {
			__builtin_trap();
		}
	}
}

static void check_addr(const char *addr, int rc)
{
	if (rc < 0 && addr[0] != '\0')
		__builtin_trap();
	if (rc == 0 && (strchr(addr, '@') == NULL || relay_addr_domain(addr)[0] == '\0'))
		__builtin_trap();
}

/* A field's value as a C string (at most size - 1 bytes). */
static void value_of(const struct dkim_hdr *h, char *out, size_t size)
{
	const char *colon = memchr(h->raw, ':', h->rawlen);
	size_t n = colon ? h->rawlen - (size_t)(colon + 1 - h->raw) : 0;

	if (n >= size)
		n = size - 1;
	if (n > 0)
		memcpy(out, colon + 1, n);
	out[n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	static struct relay_sig sigs[MAX_SIGS];
	struct relay_auth a = {.sigs = sigs};
	char addr[RELAY_ADDR_MAX], authserv[64] = "mx.example.net", helo[128] = "";
	struct dkim_sig *sig = malloc(sizeof(*sig));
	struct dkim_msg m;
	struct err e = {0};
	char *field;

	if (sig == NULL)
		return 0;
	check_addr(addr, relay_mailbox_parse(text, size, addr, sizeof(addr)));
	check_addr(addr, relay_from_address(text, size, addr, sizeof(addr)));
	if (dkim_msg_parse(text, size, &m, &e) < 0) {
		free(sig);
		return 0;
	}
	memset(sigs, 0, sizeof(sigs));
	for (size_t j = 0; j < m.nhdrs; j++) {
		const struct dkim_hdr *h = &m.hdrs[j];
		char value[600];

		value_of(h, value, sizeof(value));
		if (h->nlen == 4 && strncasecmp(h->name, "From", 4) == 0) {
			check_addr(addr,
			           relay_mailbox_parse(value, strlen(value), addr, sizeof(addr)));
			if (addr[0])
				memcpy(a.from_addr, addr, sizeof(a.from_addr));
		} else if (h->nlen == 7 && strncasecmp(h->name, "Subject", 7) == 0) {
			memcpy(authserv, value, sizeof(authserv) - 1);
			authserv[sizeof(authserv) - 1] = '\0';
		} else if (h->nlen == 8 && strncasecmp(h->name, "Received", 8) == 0) {
			memcpy(helo, value, sizeof(helo) - 1);
			helo[sizeof(helo) - 1] = '\0';
		} else if (h->nlen == 14 && strncasecmp(h->name, "DKIM-Signature", 14) == 0 &&
		           a.nsigs < MAX_SIGS) {
			struct relay_sig *s = &sigs[a.nsigs];
			int ok = dkim_sig_parse(value, strlen(value), 0, sig, &e) == 0;

			s->r.status = (enum dkim_status)(a.nsigs % 6);
			s->source = (enum relay_key_source)(a.nsigs % 4);
			if (ok) {
				memcpy(s->r.d, sig->d, sizeof(s->r.d));
				memcpy(s->r.i, sig->i, sizeof(s->r.i));
				memcpy(s->r.s, sig->s, sizeof(s->r.s));
			}
			/* the raw value stands for a reason and for b=: anything at all */
			memcpy(s->r.reason, value, sizeof(s->r.reason) - 1);
			memcpy(s->r.b, value, sizeof(s->r.b) - 1);
			memcpy(s->r.a, value, sizeof(s->r.a) - 1);
			a.nsigs++;
		}
	}
	dkim_msg_free(&m);
	free(sig);
	field = relay_authres_field(authserv, &a, helo, helo, size % 2 ? "pass" : helo, &e);
	if (field == NULL)
		__builtin_trap();
	check_field(field);
	free(field);
	return 0;
}
