/*
 * fuzz_relay_headers.c - the header side of inbound verification, no network:
 * the message splitter, the author parser (on the whole input, on the message,
 * on each From: field: every author an address with its canonical domain, each
 * address read back as itself, an error leaving nothing), the refusal rule over
 * those authors (an unverified enforce-mode author, several authors or none are
 * never delivered), every DKIM-Signature value, and the
 * Authentication-Results field written over a synthetic verdict made of what
 * the input says (domains, selectors, identities, reasons, the authserv-id).
 * The field must stay one well-formed header field whatever went in.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pki/name.h"
#include "mail/dkim.h"
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

/* An address as the parser writes it: printable ASCII, local@domain. */
static void check_addr(const char *addr)
{
	for (const char *p = addr; *p; p++)
		if ((unsigned char)*p <= 0x20 && *p != ' ')
			__builtin_trap();
		else if ((unsigned char)*p >= 0x7f)
			__builtin_trap();
	if (strchr(addr, '@') == NULL || relay_addr_domain(addr)[0] == '\0')
		__builtin_trap();
}

/* What relay_authors_parse promised, and that each address reads back as itself. */
static void check_authors_opt(const struct relay_authors *au, int rc, int utf8, const struct err *e)
{
	struct err ne = {0};

	if (rc < 0) {
		if (au->n != 0 || e->code[0] == '\0')
			__builtin_trap();
		return;
	}
	if (au->n == 0 || au->n > RELAY_AUTHORS_MAX)
		__builtin_trap();
	for (size_t k = 0; k < au->n; k++) {
		const struct relay_author *a = &au->a[k];
		struct relay_authors *again = malloc(sizeof(*again));

		check_addr(a->addr);
		/* the domain is the address's, canonical: what enforcement compares */
		if (strcmp(relay_addr_domain(a->addr), a->domain) != 0 ||
		    name_check_domain(a->domain, &ne) < 0)
			__builtin_trap();
		if (again == NULL)
			return;
		/* under SMTPUTF8 the address is canonical (pki/name) and reads back as itself */
		if ((utf8 && name_check_address(a->addr, &ne) < 0 && a->addr[0] != '"') ||
		    relay_authors_parse_opt(a->addr, strlen(a->addr), utf8, again, &ne) != 0 ||
		    again->n != 1 || strcmp(again->a[0].addr, a->addr) != 0)
			__builtin_trap();
		free(again);
	}
}

static void check_authors(const struct relay_authors *au, int rc, const struct err *e)
{
	check_authors_opt(au, rc, 0, e);
}

/* The refusal rule on these authors with flags drawn from seed: whatever they are, an
 * enforce-mode author that is not verified is never let through, nor several authors,
 * nor none. */
static void check_refusal(const struct relay_authors *au, unsigned seed)
{
	static struct relay_auth a;
	struct relay_refusal rf;
	int must = au->n != 1, may_defer = 0;

	memset(&a, 0, sizeof(a));
	a.authors = *au;
	for (size_t k = 0; k < au->n; k++) {
		struct relay_author *x = &a.authors.a[k];
		unsigned bits = seed >> (k % 8 * 4);

		x->anchored = bits & 1;
		x->testing = (bits >> 1) & 1;
		x->verified = (bits >> 2) & 1;
		x->temperror = (bits >> 3) & 1;
		if (x->anchored && !x->testing && !x->verified) {
			must = 1;
			may_defer |= x->temperror;
		}
	}
	if (relay_auth_refusal(&a, &rf) != must)
		__builtin_trap();
	if (must && rf.code != 550 && !(rf.code == 451 && may_defer && au->n == 1))
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
	struct relay_authors *authors;
	int rc;
	struct dkim_msg m;
	struct err e = {0};
	char *field;

	if (sig == NULL)
		return 0;
	authors = malloc(sizeof(*authors));
	if (authors == NULL) {
		free(sig);
		return 0;
	}
	rc = relay_authors_parse_opt(text, size, 1, authors, &e);
	check_authors_opt(authors, rc, 1, &e);
	rc = relay_authors_parse(text, size, authors, &e);
	check_authors(authors, rc, &e);
	check_refusal(authors, size > 0 ? (unsigned)data[0] * 2654435761u : 0);
	if (relay_from_address(text, size, 0, addr, sizeof(addr)) == 0)
		check_addr(addr);
	else if (addr[0] != '\0')
		__builtin_trap();
	if (dkim_msg_parse(text, size, &m, &e) < 0) {
		free(authors);
		free(sig);
		return 0;
	}
	/* the message's authors: the single one is what relay_from_address gives */
	rc = relay_message_authors(m.buf, m.len, authors, &e);
	check_authors(authors, rc, &e);
	if ((rc == 0 && authors->n == 1) != (addr[0] != '\0') ||
	    (addr[0] != '\0' && strcmp(addr, authors->a[0].addr) != 0))
		__builtin_trap();
	if (addr[0])
		memcpy(a.from_addr, addr, sizeof(a.from_addr));
	memset(sigs, 0, sizeof(sigs));
	for (size_t j = 0; j < m.nhdrs; j++) {
		const struct dkim_hdr *h = &m.hdrs[j];
		char value[600];

		value_of(h, value, sizeof(value));
		if (h->nlen == 4 && strncasecmp(h->name, "From", 4) == 0) {
			rc = relay_authors_parse(value, strlen(value), authors, &e);
			check_authors(authors, rc, &e);
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
	free(authors);
	free(sig);
	field = relay_authres_field(authserv, &a, helo, helo, size % 2 ? "pass" : helo, &e);
	if (field == NULL)
		__builtin_trap();
	check_field(field);
	free(field);
	return 0;
}
