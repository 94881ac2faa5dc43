/*
 * arf.c - ARF (RFC 5965) feedback reports: MIME structure, the
 * message/feedback-report fields, the original message's headers, and the
 * members of a report they give (subjects checked and canonical).  See arf.h.
 *
 * Errors (ERR_INPUT unless said):
 *   arf_too_large (ERR_TOOBIG)  over ARF_MAX_MESSAGE
 *   arf_nul                     a NUL octet in the message
 *   arf_bad_header              a header line that is not "Name: value"
 *   arf_too_many_headers        more than ARF_MAX_HEADERS in one header block
 *   arf_not_report              Content-Type is not multipart/report
 *   arf_not_feedback_report     report-type is not feedback-report
 *   arf_no_boundary             no boundary parameter
 *   arf_bad_multipart           no delimiter, no closing delimiter, or a part
 *                               without a header/body separator
 *   arf_no_feedback_part        no message/feedback-report part
 *   arf_bad_encoding            the feedback part is not 7bit/8bit
 *   arf_missing_field           Feedback-Type, User-Agent or Version absent
 *   arf_duplicate_field         a field that may appear once appears twice
 *   arf_bad_version             Version is not 1
 *   arf_bad_feedback_type       a Feedback-Type this server does not know
 *   arf_bad_source_ip           Source-IP is not an IP address
 *   arf_bad_reported_domain     a Reported-Domain that is not a domain
 *   arf_bad_date                Arrival-Date is not an RFC 5322 date
 *   arf_bad_field               a field too long, or Incidents not a number
 *   arf_no_subject              nothing in the report names a subject
 */
#include "mail/arf.h"
#include "pki/name.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#define ARF_MAX_HEADERS 256
#define ARF_MAX_PARTS 16

struct hdr {
	char *name;  /* as written */
	char *value; /* unfolded, trimmed */
};

struct hdrs {
	struct hdr h[ARF_MAX_HEADERS];
	int n;
};

static void hdrs_clear(struct hdrs *h)
{
	int i;

	for (i = 0; i < h->n; i++) {
		free(h->h[i].name);
		free(h->h[i].value);
	}
	h->n = 0;
}

/* Next line of [p, end): returns its end (before CR LF / LF) and sets *next. */
static const char *line_end(const char *p, const char *end, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	if (nl == NULL) {
		*next = end;
		return end;
	}
	*next = nl + 1;
	return nl > p && nl[-1] == '\r' ? nl - 1 : nl;
}

static char *dup_trim(const char *p, size_t len)
{
	char *s;

	while (len > 0 && isspace((unsigned char)*p)) {
		p++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)p[len - 1]))
		len--;
	s = malloc(len + 1);
	if (s != NULL) {
		memcpy(s, p, len);
		s[len] = '\0';
	}
	return s;
}

/* Append a continuation line (unfolding: CRLF removed, the blank kept). */
static int append(char **value, const char *p, size_t len)
{
	size_t old = strlen(*value);
	char *s = realloc(*value, old + len + 2);

	if (s == NULL)
		return -1;
	s[old] = ' ';
	memcpy(s + old + 1, p, len);
	s[old + 1 + len] = '\0';
	*value = s;
	return 0;
}

/*
 * Read a header block from [p, end) up to the empty line; *body is set
 * after it (end when the block runs to the end).  strict: a line that is
 * not a header is an error; otherwise (the original message) it is skipped.
 */
static int hdrs_parse(const char *p, const char *end, int strict, struct hdrs *h, const char **body,
                      struct err *e)
{
	const char *next, *le, *colon;

	h->n = 0;
	*body = end;
	while (p < end) {
		le = line_end(p, end, &next);
		if (le == p) { /* the empty line */
			*body = next;
			return 0;
		}
		if ((*p == ' ' || *p == '\t') && h->n > 0) {
			if (append(&h->h[h->n - 1].value, p, (size_t)(le - p)) < 0)
				goto oom;
			/* keep values trimmed */
			{
				char *v = h->h[h->n - 1].value, *t = dup_trim(v, strlen(v));

				if (t == NULL)
					goto oom;
				free(v);
				h->h[h->n - 1].value = t;
			}
			p = next;
			continue;
		}
		colon = memchr(p, ':', (size_t)(le - p));
		if (colon == NULL || colon == p || memchr(p, ' ', (size_t)(colon - p)) != NULL) {
			if (strict)
				return err_set(e, ERR_INPUT, "arf_bad_header",
				               "\"%.40s\" is not a header field (Name: value)", p);
			p = next;
			continue;
		}
		if (h->n == ARF_MAX_HEADERS)
			return err_set(e, ERR_INPUT, "arf_too_many_headers",
			               "more than %d header fields in one header block",
			               ARF_MAX_HEADERS);
		h->h[h->n].name = dup_trim(p, (size_t)(colon - p));
		h->h[h->n].value = dup_trim(colon + 1, (size_t)(le - colon - 1));
		h->n++;
		if (h->h[h->n - 1].name == NULL || h->h[h->n - 1].value == NULL)
			goto oom;
		p = next;
	}
	return 0;
oom:
	return err_set(e, ERR_INTERNAL, "internal", "out of memory");
}

static const char *hdr_get(const struct hdrs *h, const char *name, int *count)
{
	const char *v = NULL;
	int i, n = 0;

	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->h[i].name, name) == 0) {
			if (v == NULL)
				v = h->h[i].value;
			n++;
		}
	if (count != NULL)
		*count = n;
	return v;
}

/* ------------------------------------------------------------------ Content-Type */

/* "type/subtype" of a Content-Type value, lowercase, into out. */
static void ct_type(const char *v, char *out, size_t size)
{
	size_t i = 0;

	while (*v && isspace((unsigned char)*v))
		v++;
	for (; *v && *v != ';' && !isspace((unsigned char)*v) && i + 1 < size; v++)
		out[i++] = (char)tolower((unsigned char)*v);
	out[i] = '\0';
}

/* A parameter of a Content-Type value (quoted or token) into out; 0 when found. */
static int ct_param(const char *v, const char *name, char *out, size_t size)
{
	size_t nlen = strlen(name);
	const char *p = strchr(v, ';');

	while (p != NULL) {
		size_t i = 0;

		p++;
		while (*p && isspace((unsigned char)*p))
			p++;
		if (strncasecmp(p, name, nlen) != 0 ||
		    (p[nlen] != '=' && !isspace((unsigned char)p[nlen]))) {
			p = strchr(p, ';');
			continue;
		}
		p += nlen;
		while (*p && isspace((unsigned char)*p))
			p++;
		if (*p != '=')
			return -1;
		p++;
		while (*p && isspace((unsigned char)*p))
			p++;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (i + 1 >= size)
					return -1;
				out[i++] = *p;
			}
			if (*p != '"')
				return -1;
		} else {
			for (; *p && *p != ';' && !isspace((unsigned char)*p); p++) {
				if (i + 1 >= size)
					return -1;
				out[i++] = *p;
			}
		}
		out[i] = '\0';
		return i > 0 ? 0 : -1;
	}
	return -1;
}

/* ------------------------------------------------------------------ multipart */

struct part {
	const char *start, *end; /* headers and body of the part */
};

/* Is the line [p, le) the delimiter "--boundary" (1) or the close "--boundary--" (2)? */
static int delimiter(const char *p, const char *le, const char *b, size_t blen)
{
	if ((size_t)(le - p) < blen + 2 || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, b, blen) != 0)
		return 0;
	p += 2 + blen;
	if (le - p >= 2 && p[0] == '-' && p[1] == '-') {
		p += 2;
		while (p < le && isspace((unsigned char)*p))
			p++;
		return p == le ? 2 : 0;
	}
	while (p < le && isspace((unsigned char)*p))
		p++;
	return p == le ? 1 : 0;
}

static int split_parts(const char *p, const char *end, const char *b, struct part *parts,
                       int *nparts, struct err *e)
{
	size_t blen = strlen(b);
	const char *next, *le, *cur = NULL;
	int closed = 0;

	*nparts = 0;
	while (p < end && !closed) {
		int d;

		le = line_end(p, end, &next);
		d = delimiter(p, le, b, blen);
		if (d != 0 && cur != NULL) {
			/* The line break before a delimiter belongs to the delimiter. */
			const char *body_end = p;

			if (body_end > cur && body_end[-1] == '\n')
				body_end--;
			if (body_end > cur && body_end[-1] == '\r')
				body_end--;
			if (*nparts == ARF_MAX_PARTS)
				return err_set(e, ERR_INPUT, "arf_bad_multipart",
				               "more than %d MIME parts", ARF_MAX_PARTS);
			parts[*nparts].start = cur;
			parts[*nparts].end = body_end;
			(*nparts)++;
		}
		if (d != 0) {
			cur = next;
			closed = d == 2;
		}
		p = next;
	}
	if (*nparts == 0)
		return err_set(e, ERR_INPUT, "arf_bad_multipart",
		               "no MIME part delimited by \"--%.70s\"", b);
	if (!closed)
		return err_set(e, ERR_INPUT, "arf_bad_multipart",
		               "the closing delimiter \"--%.70s--\" is missing", b);
	return 0;
}

/* ------------------------------------------------------------------ fields */

static int copy_field(char *dst, size_t size, const char *v, const char *name, struct err *e)
{
	if (strlen(v) >= size)
		return err_set(e, ERR_INPUT, "arf_bad_field",
		               "the %s field is longer than %zu octets", name, size - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* The first "<...>" of v (or v itself without blanks) into out. */
static void angle_addr(const char *v, char *out, size_t size)
{
	const char *lt = strchr(v, '<'), *gt;
	size_t len;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL) {
		len = (size_t)(gt - lt - 1);
		v = lt + 1;
	} else {
		while (*v && isspace((unsigned char)*v))
			v++;
		len = strcspn(v, " \t(,;");
	}
	if (len >= size)
		len = 0;
	memcpy(out, v, len);
	out[len] = '\0';
}

static int month_of(const char *m)
{
	static const char *const names[] = {"jan", "feb", "mar", "apr", "may", "jun",
	                                    "jul", "aug", "sep", "oct", "nov", "dec"};
	int i;

	for (i = 0; i < 12; i++)
		if (strncasecmp(m, names[i], 3) == 0)
			return i;
	return -1;
}

static int zone_offset(const char *z, long *off)
{
	static const struct {
		const char *name;
		int hours;
	} zones[] = {{"UT", 0},   {"GMT", 0},  {"Z", 0},    {"EST", -5}, {"EDT", -4}, {"CST", -6},
	             {"CDT", -5}, {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};
	size_t i;

	if ((z[0] == '+' || z[0] == '-') && isdigit((unsigned char)z[1]) &&
	    isdigit((unsigned char)z[2]) && isdigit((unsigned char)z[3]) &&
	    isdigit((unsigned char)z[4])) {
		long h = (z[1] - '0') * 10 + (z[2] - '0'), m = (z[3] - '0') * 10 + (z[4] - '0');

		if (m > 59)
			return -1;
		*off = (z[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
		return 0;
	}
	for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
		if (strncasecmp(z, zones[i].name, strlen(zones[i].name)) == 0) {
			*off = zones[i].hours * 3600L;
			return 0;
		}
	if (isalpha((unsigned char)z[0])) { /* obsolete military zones: RFC 5322 says 0 */
		*off = 0;
		return 0;
	}
	return -1;
}

/* 1..max decimal digits at *p into *out; advances *p. */
static int digits(const char **p, int max, int *out)
{
	int n = 0, v = 0;

	while (n < max && isdigit((unsigned char)**p)) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	*out = v;
	return n > 0 ? 0 : -1;
}

static void blanks(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

int arf_date_parse(const char *text, time_t *out)
{
	int day, year, hh, mm, ss = 0, m;
	const char *p = text, *comma = strchr(text, ',');
	struct tm tm;
	long off;
	time_t t;

	/* [day-of-week ","] day month year hour ":" minute [":" second] zone */
	if (comma != NULL)
		p = comma + 1;
	blanks(&p);
	if (digits(&p, 2, &day) < 0)
		return -1;
	blanks(&p);
	m = month_of(p);
	if (m < 0 || !isspace((unsigned char)p[3]))
		return -1;
	p += 3;
	blanks(&p);
	if (digits(&p, 4, &year) < 0 || !isspace((unsigned char)*p))
		return -1;
	blanks(&p);
	if (digits(&p, 2, &hh) < 0 || *p++ != ':' || digits(&p, 2, &mm) < 0)
		return -1;
	if (*p == ':' && (p++, digits(&p, 2, &ss) < 0))
		return -1;
	blanks(&p);
	if (year < 50)
		year += 2000;
	else if (year < 1000)
		year += 1900;
	if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || zone_offset(p, &off) < 0)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = m;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = t - off;
	return 0;
}

const char *arf_category_name(const char *type)
{
	static const char *const map[][2] = {
	    {"abuse", "spam"},  {"fraud", "phishing"},    {"virus", "malware"},
	    {"other", "abuse"}, {"not-spam", "not-spam"}, {"auth-failure", "auth-fail"}};
	size_t i;

	for (i = 0; type != NULL && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcasecmp(type, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

/* "dkim=pass ... header.d=example.com" elements of an Authentication-Results value. */
static void auth_results(const char *v, struct arf_feedback *out)
{
	char buf[1024];
	char *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, ";", &save); tok != NULL; tok = strtok_r(NULL, ";", &save)) {
		char *d, *end;

		while (isspace((unsigned char)*tok))
			tok++;
		if (strncasecmp(tok, "dkim=pass", 9) != 0)
			continue;
		d = strcasestr(tok, "header.d=");
		if (d == NULL || out->nverified_dkim == ARF_MAX_DKIM)
			continue;
		d += 9;
		end = d + strcspn(d, " \t;()");
		if (end - d > 0 && end - d < 256) {
			memcpy(out->verified_dkim[out->nverified_dkim], d, (size_t)(end - d));
			out->verified_dkim[out->nverified_dkim++][end - d] = '\0';
		}
	}
}

/* One field a report may carry once: a second is an error. */
static int once(const struct hdrs *h, const char *name, int required, struct err *e)
{
	int n;

	hdr_get(h, name, &n);
	if (n > 1)
		return err_set(e, ERR_INPUT, "arf_duplicate_field",
		               "the %s field appears %d times; RFC 5965 allows it once", name, n);
	if (n == 0 && required)
		return err_set(e, ERR_INPUT, "arf_missing_field",
		               "the feedback report has no %s field, which RFC 5965 requires",
		               name);
	return 0;
}

static int feedback_fields(const struct hdrs *h, struct arf_feedback *out, struct err *e)
{
	static const char *const single[] = {
	    "Feedback-Type",        "User-Agent",         "Version",
	    "Original-Envelope-Id", "Original-Mail-From", "Arrival-Date",
	    "Reporting-MTA",        "Source-IP",          "Incidents"};
	const char *v;
	size_t k;
	int i;

	for (k = 0; k < sizeof(single) / sizeof(single[0]); k++)
		if (once(h, single[k], k < 3, e) < 0)
			return -1;
	if (copy_field(out->feedback_type, sizeof(out->feedback_type),
	               hdr_get(h, "Feedback-Type", NULL), "Feedback-Type", e) < 0 ||
	    copy_field(out->user_agent, sizeof(out->user_agent), hdr_get(h, "User-Agent", NULL),
	               "User-Agent", e) < 0 ||
	    copy_field(out->version, sizeof(out->version), hdr_get(h, "Version", NULL), "Version",
	               e) < 0)
		return -1;
	for (i = 0; out->feedback_type[i]; i++)
		out->feedback_type[i] = (char)tolower((unsigned char)out->feedback_type[i]);
	if (strcmp(out->version, "1") != 0)
		return err_set(e, ERR_INPUT, "arf_bad_version",
		               "Version is \"%.16s\"; this server reads version 1", out->version);
	if (arf_category_name(out->feedback_type) == NULL)
		return err_set(
		    e, ERR_INPUT, "arf_bad_feedback_type",
		    "Feedback-Type \"%.31s\" is not abuse, fraud, virus, other, not-spam or "
		    "auth-failure",
		    out->feedback_type);
	if ((v = hdr_get(h, "Source-IP", NULL)) != NULL) {
		unsigned char a[16];
		char ip[64];
		size_t len = strlen(v);

		if (v[0] == '[' && len > 2 && v[len - 1] == ']') {
			v++;
			len -= 2;
		}
		if (len >= sizeof(ip))
			len = 0;
		memcpy(ip, v, len);
		ip[len] = '\0';
		if (inet_pton(AF_INET, ip, a) != 1 && inet_pton(AF_INET6, ip, a) != 1)
			return err_set(e, ERR_INPUT, "arf_bad_source_ip",
			               "Source-IP \"%.64s\" is not an IP address", v);
		snprintf(out->source_ip, sizeof(out->source_ip), "%s", ip);
	}
	if ((v = hdr_get(h, "Original-Mail-From", NULL)) != NULL)
		angle_addr(v, out->original_mail_from, sizeof(out->original_mail_from));
	if ((v = hdr_get(h, "Original-Envelope-Id", NULL)) != NULL &&
	    copy_field(out->original_envelope_id, sizeof(out->original_envelope_id), v,
	               "Original-Envelope-Id", e) < 0)
		return -1;
	if ((v = hdr_get(h, "Reporting-MTA", NULL)) != NULL &&
	    copy_field(out->reporting_mta, sizeof(out->reporting_mta), v, "Reporting-MTA", e) < 0)
		return -1;
	if ((v = hdr_get(h, "Arrival-Date", NULL)) != NULL && arf_date_parse(v, &out->arrival) < 0)
		return err_set(e, ERR_INPUT, "arf_bad_date",
		               "Arrival-Date \"%.64s\" is not an RFC 5322 date", v);
	out->incidents = 1;
	if ((v = hdr_get(h, "Incidents", NULL)) != NULL) {
		char *end;

		out->incidents = strtol(v, &end, 10);
		if (*end != '\0' || end == v || out->incidents < 1)
			return err_set(e, ERR_INPUT, "arf_bad_field",
			               "Incidents \"%.32s\" is not a positive number", v);
	}
	for (i = 0; i < h->n; i++) {
		if (strcasecmp(h->h[i].name, "Reported-Domain") == 0) {
			if (out->nreported_domain == ARF_MAX_LIST)
				return err_set(e, ERR_INPUT, "arf_bad_field",
				               "more than %d Reported-Domain fields", ARF_MAX_LIST);
			if (copy_field(out->reported_domain[out->nreported_domain++], 256,
			               h->h[i].value, "Reported-Domain", e) < 0)
				return -1;
		} else if (strcasecmp(h->h[i].name, "Authentication-Results") == 0) {
			auth_results(h->h[i].value, out);
		}
	}
	return 0;
}

/* d= and i= of a DKIM-Signature value (folding blanks ignored). */
static void dkim_tags(const char *v, struct arf_feedback *out)
{
	char buf[2048];
	char *save = NULL, *tok;
	size_t i, j;

	if (v == NULL || out->ndkim == ARF_MAX_DKIM)
		return;
	for (i = j = 0; v[i] && j + 1 < sizeof(buf); i++)
		if (!isspace((unsigned char)v[i]))
			buf[j++] = v[i];
	buf[j] = '\0';
	out->dkim_d[out->ndkim][0] = out->dkim_i[out->ndkim][0] = '\0';
	for (tok = strtok_r(buf, ";", &save); tok != NULL; tok = strtok_r(NULL, ";", &save)) {
		size_t len = strlen(tok);

		if (strncmp(tok, "d=", 2) == 0 && len - 2 < sizeof(out->dkim_d[0]))
			memcpy(out->dkim_d[out->ndkim], tok + 2, len - 1);
		else if (strncmp(tok, "i=", 2) == 0 && len - 2 < sizeof(out->dkim_i[0]))
			memcpy(out->dkim_i[out->ndkim], tok + 2, len - 1);
	}
	if (out->dkim_d[out->ndkim][0] != '\0')
		out->ndkim++;
}

static void original_headers(const struct hdrs *h, struct arf_feedback *out)
{
	const char *v;
	int i;

	out->have_original = 1;
	if ((v = hdr_get(h, "From", NULL)) != NULL)
		angle_addr(v, out->orig_from, sizeof(out->orig_from));
	if ((v = hdr_get(h, "Message-ID", NULL)) != NULL)
		angle_addr(v, out->orig_message_id, sizeof(out->orig_message_id));
	if ((v = hdr_get(h, "Subject", NULL)) != NULL)
		snprintf(out->orig_subject, sizeof(out->orig_subject), "%.127s", v);
	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->h[i].name, "DKIM-Signature") == 0)
			dkim_tags(h->h[i].value, out);
}

/* ------------------------------------------------------------------ the message */

static int parse_parts(const char *body, const char *end, const char *boundary,
                       struct arf_feedback *out, struct err *e)
{
	struct part parts[ARF_MAX_PARTS];
	struct hdrs h = {.n = 0};
	int nparts, i, found = 0, rc = -1;

	if (split_parts(body, end, boundary, parts, &nparts, e) < 0)
		return -1;
	for (i = 0; i < nparts; i++) {
		const char *pbody, *v;
		char type[64] = "text/plain";

		hdrs_clear(&h);
		if (hdrs_parse(parts[i].start, parts[i].end, 1, &h, &pbody, e) < 0)
			goto out;
		if ((v = hdr_get(&h, "Content-Type", NULL)) != NULL)
			ct_type(v, type, sizeof(type));
		if (strcmp(type, "message/feedback-report") == 0 && !found) {
			struct hdrs f = {.n = 0};
			const char *fend;
			int frc;

			v = hdr_get(&h, "Content-Transfer-Encoding", NULL);
			if (v != NULL && strcasecmp(v, "7bit") != 0 && strcasecmp(v, "8bit") != 0) {
				err_set(e, ERR_INPUT, "arf_bad_encoding",
				        "the feedback part is sent as %.32s; RFC 5965 wants 7bit",
				        v);
				goto out;
			}
			found = 1;
			frc = hdrs_parse(pbody, parts[i].end, 1, &f, &fend, e);
			if (frc == 0)
				frc = feedback_fields(&f, out, e);
			hdrs_clear(&f);
			if (frc < 0)
				goto out;
		} else if ((strcmp(type, "message/rfc822") == 0 ||
		            strcmp(type, "text/rfc822-headers") == 0) &&
		           !out->have_original) {
			struct hdrs o = {.n = 0};
			const char *oend;

			/* The original is evidence, not structure: lenient. */
			if (hdrs_parse(pbody, parts[i].end, 0, &o, &oend, e) == 0)
				original_headers(&o, out);
			hdrs_clear(&o);
		}
	}
	if (!found) {
		err_set(e, ERR_INPUT, "arf_no_feedback_part",
		        "the report has no message/feedback-report part");
		goto out;
	}
	rc = 0;
out:
	hdrs_clear(&h);
	return rc;
}

int arf_feedback_parse(const char *msg, size_t len, struct arf_feedback *out, struct err *e)
{
	struct hdrs top = {.n = 0};
	char type[64] = "", param[128];
	const char *body, *v;
	char *copy = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > ARF_MAX_MESSAGE)
		return err_set(e, ERR_TOOBIG, "arf_too_large",
		               "the report is %zu octets; at most %d are accepted", len,
		               ARF_MAX_MESSAGE);
	if (memchr(msg, '\0', len) != NULL)
		return err_set(e, ERR_INPUT, "arf_nul", "the report holds a NUL octet");
	copy = malloc(len + 1);
	if (copy == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	memcpy(copy, msg, len);
	copy[len] = '\0';
	if (hdrs_parse(copy, copy + len, 1, &top, &body, e) < 0)
		goto out;
	v = hdr_get(&top, "Content-Type", NULL);
	if (v != NULL)
		ct_type(v, type, sizeof(type));
	if (strcmp(type, "multipart/report") != 0) {
		err_set(e, ERR_INPUT, "arf_not_report",
		        "Content-Type is \"%.40s\", not multipart/report", v ? type : "(none)");
		goto out;
	}
	if (ct_param(v, "report-type", param, sizeof(param)) < 0 ||
	    strcasecmp(param, "feedback-report") != 0) {
		err_set(e, ERR_INPUT, "arf_not_feedback_report",
		        "the multipart/report is not of report-type=feedback-report");
		goto out;
	}
	if (ct_param(v, "boundary", param, sizeof(param)) < 0) {
		err_set(e, ERR_INPUT, "arf_no_boundary", "the multipart/report has no boundary");
		goto out;
	}
	if ((v = hdr_get(&top, "Message-ID", NULL)) != NULL)
		angle_addr(v, out->message_id, sizeof(out->message_id));
	if ((v = hdr_get(&top, "Date", NULL)) != NULL && arf_date_parse(v, &out->date) < 0)
		out->date = 0; /* the report's own Date is a fallback only */
	rc = parse_parts(body, copy + len, param, out, e);
out:
	hdrs_clear(&top);
	free(copy);
	return rc;
}

/* ------------------------------------------------------------------ -> report */

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
