/*
 * subject.c - the typed subjects of reports and queries, categories and verdicts.
 *
 * Every subject is checked and put in one canonical text form before it is stored or
 * looked up, so that "IP:192.000.2.1"-style variants cannot split one sender's evidence:
 * names are lowercased without a trailing dot, addresses go through inet_pton/inet_ntop
 * (IPv4-mapped IPv6 becomes IPv4), key fingerprints are lowercase hex.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/text.h"
#include "pki/name.h"
#include "mail/csa.h"
#include "rep.h"

static const char *const kind_names[] = {
    [REP_IP] = "ip",         [REP_HELO] = "helo", [REP_DOMAIN] = "domain",
    [REP_SIGNER] = "signer", [REP_KEY] = "key",   [REP_ADDRESS] = "address",
};
#define NKINDS (sizeof(kind_names) / sizeof(kind_names[0]))

static const char *const category_names[] = {
    [REP_SPAM] = "spam",   [REP_PHISHING] = "phishing", [REP_MALWARE] = "malware",
    [REP_ABUSE] = "abuse", [REP_NOT_SPAM] = "not-spam", [REP_AUTH_FAIL] = "auth-fail",
};
#define NCATEGORIES (sizeof(category_names) / sizeof(category_names[0]))

static const char *const verdict_names[] = {
    [REP_TRUSTED] = "trusted",
    [REP_KNOWN] = "known",
    [REP_UNKNOWN] = "unknown",
    [REP_BLOCK] = "block",
};

/* Canonical text of an IPv4 or IPv6 address; -1 when it is neither. */
static int ip_canon(const char *in, char *out, size_t size)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, in, buf) == 1)
		return inet_ntop(AF_INET, buf, out, (socklen_t)size) ? 0 : -1;
	if (inet_pton(AF_INET6, in, buf) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)buf))
		return inet_ntop(AF_INET, buf + 12, out, (socklen_t)size) ? 0 : -1;
	return inet_ntop(AF_INET6, buf, out, (socklen_t)size) ? 0 : -1;
}

/* v quoted for a message: printable ASCII only, so that a cut never splits a UTF-8
 * sequence of the JSON error body. */
static const char *show(const char *v, char buf[80])
{
	csa_helo_show(v, strlen(v), buf, 80);
	return buf;
}

static int check_ip(const char *v, char *out, size_t size, struct err *e)
{
	char sb[80];

	if (ip_canon(v, out, size) < 0)
		return err_set(e, ERR_INPUT, "bad_subject", "%s is not an IPv4 or IPv6 address",
		               show(v, sb));
	return 0;
}

static int check_domain(const char *v, char *out, size_t size, struct err *e)
{
	struct err why = {0};
	char sb[80];

	if (name_canon_domain(v, out, size, &why) < 0)
		return err_set(e, ERR_INPUT, "bad_subject", "%s is not a host name: %s",
		               show(v, sb), why.msg);
	return 0;
}

/* A HELO name or an address literal, as csa_helo_classify reads it (the one rule the
 * query's CSA check uses too); the other forms are refused here.  A query does not
 * refuse them: it judges them (query.c). */
static int check_helo(const char *v, char *out, size_t size, struct err *e)
{
	struct err why = {0};
	char sb[80];

	if (csa_helo_classify(v, strlen(v), out, size, &why) != CSA_HELO_INVALID)
		return 0;
	return err_set(e, ERR_INPUT, "bad_subject",
	               "%s is not a host name or an address literal (%s)", show(v, sb), why.msg);
}

static int check_key(const char *v, char *out, size_t size, struct err *e)
{
	text_lower_copy(out, size, v);
	if (strlen(v) != 7 + 64 || strncmp(out, "sha256:", 7) != 0 ||
	    strspn(out + 7, "0123456789abcdef") != 64)
		return err_set(
		    e, ERR_INPUT, "bad_subject",
		    "a key subject is \"sha256:\" and 64 hex digits of the certificate's "
		    "SHA-256 fingerprint");
	return 0;
}

static int check_address(const char *v, char *out, size_t size, struct err *e)
{
	struct err why = {0};
	char sb[80];

	text_lower_copy(out, size, v);
	if (strlen(v) >= size)
		return err_set(e, ERR_INPUT, "bad_subject",
		               "a mail address has at most 254 characters");
	if (name_check_address(out, &why) < 0)
		return err_set(e, ERR_INPUT, "bad_subject", "%s is not a mail address: %s",
		               show(v, sb), why.msg);
	return 0;
}

int rep_subject_make(enum rep_subject_kind kind, const char *value, struct rep_subject *out,
                     struct err *e)
{
	struct err sub = {0};
	int rc;

	memset(out, 0, sizeof(*out));
	if ((unsigned)kind >= NKINDS)
		return err_set(e, ERR_INPUT, "bad_subject", "unknown subject kind");
	if (value == NULL || value[0] == '\0' || strlen(value) >= REP_SUBJECT_MAX)
		return err_set(e, ERR_INPUT, "bad_subject",
		               "a %s subject must have 1 to %d characters", kind_names[kind],
		               REP_SUBJECT_MAX - 1);
	switch (kind) {
	case REP_IP:
		rc = check_ip(value, out->value, sizeof(out->value), &sub);
		break;
	case REP_HELO:
		rc = check_helo(value, out->value, sizeof(out->value), &sub);
		break;
	case REP_DOMAIN:
	case REP_SIGNER:
		rc = check_domain(value, out->value, sizeof(out->value), &sub);
		break;
	case REP_KEY:
		rc = check_key(value, out->value, sizeof(out->value), &sub);
		break;
	default:
		rc = check_address(value, out->value, sizeof(out->value), &sub);
		break;
	}
	if (rc < 0) {
		*e = sub;
		return -1;
	}
	out->kind = kind;
	snprintf(out->text, sizeof(out->text), "%s:%s", kind_names[kind], out->value);
	return 0;
}

int rep_subject_parse(const char *text, struct rep_subject *out, struct err *e)
{
	const char *colon = text ? strchr(text, ':') : NULL;
	size_t klen;

	if (colon == NULL)
		return err_set(
		    e, ERR_INPUT, "bad_subject",
		    "a subject is \"kind:value\" with kind ip, helo, domain, signer, key "
		    "or address");
	klen = (size_t)(colon - text);
	for (size_t k = 0; k < NKINDS; k++)
		if (strlen(kind_names[k]) == klen && strncasecmp(text, kind_names[k], klen) == 0)
			return rep_subject_make((enum rep_subject_kind)k, colon + 1, out, e);
	return err_set(
	    e, ERR_INPUT, "bad_subject",
	    "unknown subject kind \"%.*s\"; use ip, helo, domain, signer, key or address",
	    (int)(klen > 20 ? 20 : klen), text);
}

const char *rep_subject_kind_name(enum rep_subject_kind k)
{
	return (unsigned)k < NKINDS ? kind_names[k] : "?";
}

int rep_category_parse(const char *name, enum rep_category *out, struct err *e)
{
	for (size_t i = 0; name != NULL && i < NCATEGORIES; i++) {
		if (strcmp(name, category_names[i]) == 0) {
			*out = (enum rep_category)i;
			return 0;
		}
	}
	return err_set(
	    e, ERR_INPUT, "bad_category",
	    "unknown category \"%.40s\"; use spam, phishing, malware, abuse, not-spam or "
	    "auth-fail",
	    name ? name : "");
}

const char *rep_category_name(enum rep_category c)
{
	return (unsigned)c < NCATEGORIES ? category_names[c] : "?";
}

const char *rep_verdict_name(enum rep_verdict v)
{
	return (unsigned)v < sizeof(verdict_names) / sizeof(verdict_names[0]) ? verdict_names[v]
	                                                                      : "?";
}

int rep_verdict_parse(const char *name, enum rep_verdict *out)
{
	for (size_t i = 0; name != NULL && i < sizeof(verdict_names) / sizeof(verdict_names[0]);
	     i++) {
		if (strcmp(name, verdict_names[i]) == 0) {
			*out = (enum rep_verdict)i;
			return 0;
		}
	}
	return -1;
}

void rep_network_of(const char *ip, int prefix4, int prefix6, char *out, size_t size)
{
	unsigned char buf[16];
	char text[64];
	int v4, bits, len;

	out[0] = '\0';
	if (ip == NULL)
		return;
	v4 = inet_pton(AF_INET, ip, buf) == 1;
	if (!v4 && inet_pton(AF_INET6, ip, buf) != 1)
		return;
	bits = v4 ? prefix4 : prefix6;
	len = v4 ? 4 : 16;
	for (int i = 0; i < len; i++) {
		int keep = bits - 8 * i;

		if (keep <= 0)
			buf[i] = 0;
		else if (keep < 8)
			buf[i] &= (unsigned char)(0xff << (8 - keep));
	}
	if (inet_ntop(v4 ? AF_INET : AF_INET6, buf, text, sizeof(text)) != NULL)
		snprintf(out, size, "%s/%d", text, bits);
}
