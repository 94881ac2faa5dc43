/*
 * arf_report.c - what a parsed ARF message says, as the members of a report
 * (PROTOCOL.md §11.3): the subjects checked and made canonical, the id, the
 * observation time and whether the identity was verified.  The mapping is
 * described in arf.h; the parsing is arf.c's.
 */
#include "mail/arf.h"
#include "pki/cert.h"
#include "pki/name.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

/* Lowercase, one trailing dot off (as the reputation service canonicalises names). */
static int name_canon(const char *in, char *out, size_t size)
{
	size_t n = strlen(in), i;

	if (n == 0 || n >= size)
		return -1;
	for (i = 0; i <= n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	if (n > 1 && out[n - 1] == '.')
		out[n - 1] = '\0';
	return 0;
}

/* The canonical "kind:value" of a subject, or -1 with a reason when it is malformed. */
static int subject_canon(const char *kind, const char *value, char *out, size_t size,
                         struct err *why)
{
	char canon[ARF_SUBJECT_MAX];
	unsigned char ip[16];

	if (strcmp(kind, "ip") == 0) {
		if (inet_pton(AF_INET, value, ip) == 1)
			inet_ntop(AF_INET, ip, canon, sizeof(canon));
		else if (inet_pton(AF_INET6, value, ip) != 1)
			return err_set(why, ERR_INPUT, "bad_subject",
			               "\"%.64s\" is not an IPv4 or IPv6 address", value);
		else if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)ip))
			inet_ntop(AF_INET, ip + 12, canon, sizeof(canon));
		else
			inet_ntop(AF_INET6, ip, canon, sizeof(canon));
	} else if (name_canon(value, canon, sizeof(canon)) < 0) {
		return err_set(why, ERR_INPUT, "bad_subject", "\"%.64s\" is too long", value);
	} else if (strcmp(kind, "address") == 0 ? name_check_address(canon, why) < 0
	                                        : name_check_domain(canon, why) < 0) {
		return -1;
	}
	snprintf(out, size, "%s:%s", kind, canon);
	return 0;
}

/*
 * Add kind:value unless empty or already there.  A malformed value is an error
 * with code when code is not NULL (a field the report asserts), else skipped (a
 * hint from the original message).
 */
static int add_subject(struct arf_report *r, const char *kind, const char *value, const char *code,
                       struct err *e)
{
	char s[ARF_SUBJECT_MAX + 16];
	struct err why = {0};
	int i;

	if (value[0] == '\0')
		return 0;
	if (subject_canon(kind, value, s, sizeof(s), &why) < 0)
		return code != NULL ? err_set(e, ERR_INPUT, code, "%s", why.msg) : 0;
	for (i = 0; i < r->nsubjects; i++)
		if (strcmp(r->subjects[i], s) == 0)
			return 0;
	if (r->nsubjects < ARF_MAX_SUBJECTS)
		snprintf(r->subjects[r->nsubjects++], sizeof(r->subjects[0]), "%s", s);
	return 0;
}

static void report_id(const struct arf_feedback *f, const char *msg, size_t len, char *out,
                      size_t size)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t i, pos;

	if (f->message_id[0] != '\0' && strlen(f->message_id) < size &&
	    strlen(f->message_id) < 120) {
		memcpy(out, f->message_id, strlen(f->message_id) + 1);
		return;
	}
	SHA256((const unsigned char *)msg, len, md);
	pos = (size_t)snprintf(out, size, "sha256:");
	for (i = 0; i < sizeof(md) && pos + 2 < size; i++)
		pos += (size_t)snprintf(out + pos, size - pos, "%02x", md[i]);
}

static int report_subjects(const struct arf_feedback *f, struct arf_report *out, struct err *e)
{
	int i, j;

	if (add_subject(out, "ip", f->source_ip, "arf_bad_source_ip", e) < 0)
		return -1;
	for (i = 0; i < f->nreported_domain; i++)
		if (add_subject(out, "domain", f->reported_domain[i], "arf_bad_reported_domain",
		                e) < 0)
			return -1;
	for (i = 0; i < f->ndkim; i++) {
		add_subject(out, "signer", f->dkim_d[i], NULL, e);
		if (f->dkim_i[i][0] != '@')
			add_subject(out, "address", f->dkim_i[i], NULL, e);
		for (j = 0; j < f->nverified_dkim; j++)
			if (strcasecmp(f->verified_dkim[j], f->dkim_d[i]) == 0)
				out->verified_identity = 1;
	}
	add_subject(out, "address", f->original_mail_from, NULL, e);
	add_subject(out, "address", f->orig_from, NULL, e);
	if (out->nsubjects == 0)
		return err_set(e, ERR_INPUT, "arf_no_subject",
		               "the report names no subject: no Source-IP, Reported-Domain, DKIM "
		               "signer or sender address");
	return 0;
}

int arf_report_make(const char *msg, size_t len, struct arf_report *out, struct err *e)
{
	struct arf_feedback *f = calloc(1, sizeof(*f));
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (f == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (arf_feedback_parse(msg, len, f, e) < 0 || report_subjects(f, out, e) < 0)
		goto out;
	out->category = arf_category_name(f->feedback_type);
	report_id(f, msg, len, out->id, sizeof(out->id));
	out->observed = f->arrival ? f->arrival : f->date ? f->date : time(NULL);
	if (snprintf(out->evidence, sizeof(out->evidence),
	             "ARF %s report (%ld incident%s) by %.100s%s%.100s; original Message-ID "
	             "<%.120s>; Subject: %.100s",
	             f->feedback_type, f->incidents, f->incidents == 1 ? "" : "s", f->user_agent,
	             f->reporting_mta[0] ? " at " : "", f->reporting_mta, f->orig_message_id,
	             f->orig_subject) >= (int)sizeof(out->evidence))
		out->evidence[sizeof(out->evidence) - 2] = '~'; /* truncated */
	rc = 0;
out:
	free(f);
	return rc;
}
