/* rep_trace.c - the relay's own trace fields of a message; see rep_trace.h. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/text.h"
#include "relay.h"
#include "rep_trace.h"
#include "mail/repverdict.h"
#include "mail/smtp.h"
#include "pki/name.h"

struct field {
	char name[64];
	char *value; /* unfolded (CR and LF removed), malloc'd */
};

/* The next header field from *p (lenient: CRLF or LF, lines without a colon are
 * skipped); 0 at the end of the header section. */
static int next_field(const char **p, const char *end, struct field *f)
{
	const char *s = *p, *colon, *eol, *v;
	size_t n, vlen;
	char *out;

	for (;;) {
		if (s >= end || *s == '\n' || (*s == '\r' && s + 1 < end && s[1] == '\n'))
			return 0;
		eol = memchr(s, '\n', (size_t)(end - s));
		eol = eol != NULL ? eol + 1 : end;
		while (eol < end && (*eol == ' ' || *eol == '\t')) {
			const char *nl = memchr(eol, '\n', (size_t)(end - eol));

			eol = nl != NULL ? nl + 1 : end;
		}
		colon = memchr(s, ':', (size_t)(eol - s));
		if (colon != NULL && colon > s && (size_t)(colon - s) < sizeof(f->name) &&
		    s[0] != ' ' && s[0] != '\t')
			break;
		s = eol;
	}
	n = (size_t)(colon - s);
	memcpy(f->name, s, n);
	f->name[n] = '\0';
	while (n > 0 && (f->name[n - 1] == ' ' || f->name[n - 1] == '\t'))
		f->name[--n] = '\0';
	v = colon + 1;
	vlen = (size_t)(eol - v);
	out = malloc(vlen + 1);
	if (out == NULL)
		return -1;
	n = 0;
	for (size_t i = 0; i < vlen; i++)
		if (v[i] != '\r' && v[i] != '\n')
			out[n++] = v[i];
	out[n] = '\0';
	f->value = out;
	*p = eol;
	return 1;
}

/* What the relay's own fields say about a message. */
static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* A whitespace-delimited token (also stopped by '(' and ';') into out; returns after it. */
static const char *token(const char *s, char *out, size_t size)
{
	size_t n = 0;

	s = skip_ws(s);
	while (*s && *s != ' ' && *s != '\t' && *s != '(' && *s != ';') {
		if (n + 1 < size)
			out[n++] = *s;
		s++;
	}
	out[n] = '\0';
	return s;
}

/* The canonical text of an IP address ("IPv6:" prefix allowed); 0 when it is none. */
static int ip_canon(const char *in, char *out, size_t size)
{
	unsigned char buf[16];

	if (strncasecmp(in, "IPv6:", 5) == 0)
		in += 5;
	if (inet_pton(AF_INET, in, buf) == 1)
		return inet_ntop(AF_INET, buf, out, (socklen_t)size) != NULL;
	if (inet_pton(AF_INET6, in, buf) == 1)
		return inet_ntop(AF_INET6, buf, out, (socklen_t)size) != NULL;
	return 0;
}

/* A HELO name as a subject: a host name (lowercase, no trailing dot) or an address literal. */
static int helo_canon(const char *in, char *out, size_t size)
{
	size_t n;

	text_lower_copy(out, size, in);
	n = strlen(out);
	if (n > 1 && out[n - 1] == '.' && out[0] != '[')
		out[--n] = '\0';
	if (n == 0 || n >= size - 1)
		return 0;
	if (out[0] == '[') {
		if (strncmp(out, "[ipv6:", 6) == 0)
			memcpy(out + 1, "IPv6", 4); /* the canonical spelling of the tag */
		return smtp_address_literal_valid(out, n);
	}
	return smtp_domain_valid(out, n);
}

/* One Received field's hop: "from <helo> (<rdns> [<ip>]) by <by> ...". */
struct hop {
	char helo[300], ip[80], by[300];
	int submission; /* "from <helo> ([<ip>])": the form our submission port writes */
};

/* 0 when the field is not of that form. */
static int parse_received(const char *v, struct hop *h)
{
	char word[300];
	const char *s = token(v, word, sizeof(word)), *open, *close, *lb, *rb;

	memset(h, 0, sizeof(*h));
	if (strcasecmp(word, "from") != 0)
		return 0;
	s = token(s, h->helo, sizeof(h->helo));
	s = skip_ws(s);
	if (*s == '(') {
		open = s;
		if ((close = strchr(open, ')')) == NULL)
			return 0;
		/* "([ip])" alone; inbound writes "(helo [ip])", with an address literal HELO
		 * "([a.b.c.d] [ip])" */
		h->submission = open[1] == '[' &&
		                (rb = memchr(open, ']', (size_t)(close - open))) != NULL &&
		                rb + 1 == close;
		/* the last [...] in the comment: the HELO itself may be an address literal */
		for (lb = open; (lb = memchr(lb, '[', (size_t)(close - lb))) != NULL; lb = rb) {
			size_t n;

			if ((rb = memchr(lb, ']', (size_t)(close - lb))) == NULL)
				break;
			n = (size_t)(rb - lb - 1);
			if (n < sizeof(h->ip)) {
				memcpy(h->ip, lb + 1, n);
				h->ip[n] = '\0';
			}
		}
		s = close + 1;
	}
	s = token(s, word, sizeof(word));
	if (strcasecmp(word, "by") != 0)
		return 0;
	token(s, h->by, sizeof(h->by));
	return 1;
}

enum walk { WALK_FIND_OURS, WALK_OWN_CHAIN, WALK_DONE };

/* One Received field on the way down (see rep_trace.h); returns the next state. */
static enum walk walk_received(const struct relay_rep_own *own, const char *v, enum walk w,
                               struct relay_rep_trace *o)
{
	struct hop h;
	char ip[64];
	int ours_by, own_hop;

	if (!parse_received(v, &h))
		return w == WALK_FIND_OURS ? w : WALK_DONE;
	ours_by = strcasecmp(h.by, own->hostname) == 0;
	if (w == WALK_FIND_OURS && !ours_by)
		return w; /* added after us, by the mailbox side */
	if (w == WALK_OWN_CHAIN && !ours_by && !relay_list_has(own->own_hosts, h.by))
		return WALK_DONE; /* written by a stranger: nothing below it is known */
	o->have_received = 1;
	if (!ip_canon(h.ip, ip, sizeof(ip)))
		ip[0] = '\0';
	own_hop =
	    (ip[0] && relay_netlist_match(own->own_networks, ip)) || (h.submission && ours_by);
	if (own_hop) {
		o->own_hops++;
		return WALK_OWN_CHAIN;
	}
	o->external = 1;
	snprintf(o->ip, sizeof(o->ip), "%s", ip);
	/* inbound writes "unknown" when the client sent no HELO */
	if (strcmp(h.helo, "unknown") == 0 || !helo_canon(h.helo, o->helo, sizeof(o->helo)))
		o->helo[0] = '\0';
	return WALK_DONE;
}

/* The value with RFC 5322 comments removed (quoted strings kept), in place. */
static void strip_comments(char *s)
{
	char *w = s;
	int depth = 0, quoted = 0;

	for (; *s; s++) {
		if (quoted) {
			if (*s == '\\' && s[1]) {
				*w++ = *s++;
			} else if (*s == '"') {
				quoted = 0;
			}
			*w++ = *s;
		} else if (depth > 0) {
			if (*s == '\\' && s[1])
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')')
				depth--;
		} else if (*s == '(') {
			depth++;
			*w++ = ' ';
		} else {
			if (*s == '"')
				quoted = 1;
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* A property value without its quotes, lowercase. */
static void prop_value(const char *v, char *out, size_t size)
{
	char tmp[300];
	size_t n;

	text_lower_copy(tmp, sizeof(tmp), v);
	n = strlen(tmp);
	if (n >= 2 && tmp[0] == '"' && tmp[n - 1] == '"') {
		tmp[n - 1] = '\0';
		snprintf(out, size, "%s", tmp + 1);
	} else {
		snprintf(out, size, "%s", tmp);
	}
}

static void domain_canon(char *d)
{
	size_t n = strlen(d);

	if (n > 0 && d[n - 1] == '.')
		d[n - 1] = '\0';
}

static int domain_ok(const char *d)
{
	struct err e;

	return d[0] != '\0' && name_check_domain(d, &e) == 0;
}

/* The next blank-separated word of *s, quoted strings kept whole; NULL at the end. */
static char *next_word(char **s)
{
	char *p = (char *)skip_ws(*s), *start = p;
	int quoted = 0;

	if (*p == '\0')
		return NULL;
	for (; *p && (quoted || (*p != ' ' && *p != '\t')); p++) {
		if (quoted && *p == '\\' && p[1])
			p++;
		else if (*p == '"')
			quoted = !quoted;
	}
	if (*p)
		*p++ = '\0';
	*s = p;
	return start;
}

/* One resinfo ("dkim=pass header.d=example.com header.i=@example.com"). */
static void parse_resinfo(char *ri, struct relay_rep_trace *o)
{
	char method[64], result[32], *tok, *eq, dom[256] = "", from[256] = "";
	int first = 1, dkim_pass = 0;

	method[0] = result[0] = '\0';
	while ((tok = next_word(&ri)) != NULL) {
		if ((eq = strchr(tok, '=')) == NULL) {
			first = 0;
			continue;
		}
		*eq = '\0';
		if (first) {
			char *slash = strchr(tok, '/');

			if (slash != NULL)
				*slash = '\0';
			text_lower_copy(method, sizeof(method), tok);
			text_lower_copy(result, sizeof(result), eq + 1);
			dkim_pass = strcmp(method, "dkim") == 0 && strcmp(result, "pass") == 0;
			if (strcmp(method, "csa") == 0 && strcmp(result, "pass") == 0)
				o->csa_pass = 1;
			first = 0;
		} else if (strcasecmp(tok, "header.d") == 0 && dkim_pass) {
			prop_value(eq + 1, dom, sizeof(dom));
		} else if (strcasecmp(tok, "header.i") == 0 && dkim_pass && !dom[0]) {
			char iv[300], *at;

			prop_value(eq + 1, iv, sizeof(iv));
			at = strrchr(iv, '@');
			snprintf(dom, sizeof(dom), "%.255s", at ? at + 1 : iv);
		} else if (strcasecmp(tok, "header.from") == 0) {
			prop_value(eq + 1, from, sizeof(from));
		} else if (strcasecmp(tok, "smtp.helo") == 0 && !o->ar_helo[0]) {
			char h[300];

			prop_value(eq + 1, h, sizeof(h));
			if (!helo_canon(h, o->ar_helo, sizeof(o->ar_helo)))
				o->ar_helo[0] = '\0';
		} else if (strcasecmp(tok, "policy.iprev") == 0 && !o->ar_ip[0]) {
			char ip[80];

			prop_value(eq + 1, ip, sizeof(ip));
			if (!ip_canon(ip, o->ar_ip, sizeof(o->ar_ip)))
				o->ar_ip[0] = '\0';
		}
	}
	if (dkim_pass) {
		o->dkim_pass = 1;
		domain_canon(dom);
		if (domain_ok(dom) && o->nsigners < 2 &&
		    (o->nsigners == 0 || strcmp(o->signers[0], dom) != 0))
			snprintf(o->signers[o->nsigners++], sizeof(o->signers[0]), "%s", dom);
	}
	if (from[0]) {
		char *at = strrchr(from, '@');

		snprintf(o->from_domain, sizeof(o->from_domain), "%s", at ? at + 1 : from);
		domain_canon(o->from_domain);
	}
}

/* "<authserv-id> [version]; resinfo; ...": only when authserv-id is ours. */
static int parse_authres(char *v, const char *authserv_id, struct relay_rep_trace *o)
{
	char id[256], *part, *s;
	int quoted = 0;

	strip_comments(v);
	token(v, id, sizeof(id));
	if (strcasecmp(id, authserv_id) != 0)
		return 0;
	o->have_ar = 1;
	part = strchr(v, ';');
	while (part != NULL) {
		part++;
		for (s = part; *s && (quoted || *s != ';'); s++) {
			if (quoted && *s == '\\' && s[1])
				s++;
			else if (*s == '"')
				quoted = !quoted;
		}
		if (*s == ';') {
			*s = '\0';
			parse_resinfo(part, o);
			part = s;
		} else {
			parse_resinfo(part, o);
			part = NULL;
		}
	}
	return 1;
}

/* The domain of the (first) From address. */
static void from_domain(char *v, char *out, size_t size)
{
	char *lt, *gt, *at, *end;

	strip_comments(v);
	if ((lt = strchr(v, '<')) != NULL && (gt = strchr(lt, '>')) != NULL) {
		*gt = '\0';
		v = lt + 1;
	} else if ((end = strchr(v, ',')) != NULL) {
		*end = '\0';
	}
	if ((at = strrchr(v, '@')) == NULL)
		return;
	at = (char *)skip_ws(at + 1);
	for (end = at; *end && *end != ' ' && *end != '\t' && *end != '>'; end++)
		;
	*end = '\0';
	text_lower_copy(out, size, at);
	domain_canon(out);
}

static void ar_source(const struct relay_rep_own *own, struct relay_rep_trace *o)
{
	if (!o->ip[0])
		snprintf(o->ip, sizeof(o->ip), "%s", o->ar_ip);
	if (!o->helo[0])
		snprintf(o->helo, sizeof(o->helo), "%s", o->ar_helo);
	if (o->ip[0] && relay_netlist_match(own->own_networks, o->ip)) {
		o->ip[0] = o->helo[0] = '\0';
		o->own_hops = 1;
		o->external = 0;
		return;
	}
	if (o->ip[0] || o->helo[0])
		o->external = 1;
}

void relay_rep_trace_read(const struct relay_rep_own *own, const char *msg, size_t len,
                          struct relay_rep_trace *o)
{
	const char *p = msg, *end = msg + len;
	char fromdom[256] = "";
	enum walk w = WALK_FIND_OURS;
	struct field f;

	memset(o, 0, sizeof(*o));
	while (next_field(&p, end, &f) > 0) {
		if (strcasecmp(f.name, "Received") == 0 && w != WALK_DONE)
			w = walk_received(own, f.value, w, o);
		else if (strcasecmp(f.name, "Authentication-Results") == 0 && !o->have_ar)
			parse_authres(f.value, own->authserv_id, o);
		else if (strcasecmp(f.name, "From") == 0 && !fromdom[0])
			from_domain(f.value, fromdom, sizeof(fromdom));
		else if (strcasecmp(f.name, "Message-ID") == 0 && !o->message_id[0])
			repverdict_clean(skip_ws(f.value), o->message_id, sizeof(o->message_id));
		free(f.value);
	}
	/* Our A-R speaks of the topmost hop only (the one our Received names, or the only
	 * one we know without it): its HELO, address and CSA result are the source's only
	 * when that hop is not our own. */
	if (o->own_hops == 0 && (o->external || !o->have_received))
		ar_source(own, o);
	if (!o->external || o->own_hops > 0)
		o->csa_pass = 0;
	if (!o->from_domain[0])
		snprintf(o->from_domain, sizeof(o->from_domain), "%s", fromdom);
	if (!domain_ok(o->from_domain))
		o->from_domain[0] = '\0';
}
