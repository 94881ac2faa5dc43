/*
 * queue_record.c - the header record of a spool file.
 *
 * A record is lines of "key value", in a fixed order, each ending in LF:
 *
 *   anchor-queue 1
 *   id 0000017f3a2b9c00a1b2c3d4e5f60718
 *   arrival 1700000000
 *   size 1234
 *   sender alice@example.org          ("sender " for the null reverse-path)
 *   flags requiretls                  (only when a flag is set: records written
 *                                      before flags existed read back unchanged)
 *   dsn-ret, dsn-envid                (optional, RFC 3461: see queue_dsn.c)
 *   rcpt deferred 2 1700000300 bob@example.net
 *   reply 451 4.7.0 try again later   (one after every rcpt line, maybe empty)
 *   notify, orcpt                     (optional, RFC 3461: see queue_dsn.c)
 *   end
 *
 * followed by exactly `size` bytes of message.  The parser is strict (no
 * optional fields but "flags", no leniency about numbers or order) because a record that
 * does not read back exactly is a corrupted spool file, to be quarantined.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/queue_priv.h"

#define MAGIC "anchor-queue 1"

static const char *const status_names[] = {"pending", "delivered", "failed", "deferred"};

const char *queue_status_name(enum queue_status s)
{
	return (unsigned)s < 4 ? status_names[s] : "?";
}

int queue_addr_valid(const char *a)
{
	size_t n = strlen(a);

	if (n >= QUEUE_ADDR_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return 0;
	}
	return 1;
}

static int text_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

void queue_msg_free(struct queue_msg *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nrcpt; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].reply);
		free(m->rcpts[i].dsn_orcpt);
	}
	free(m->rcpts);
	free(m->sender);
	free(m->dsn_envid);
	free(m);
}

struct queue_msg *queue_msg_dup(const struct queue_msg *m)
{
	struct queue_msg *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	memcpy(c->id, m->id, sizeof(c->id));
	c->arrival = m->arrival;
	c->size = m->size;
	c->flags = m->flags;
	c->sender = strdup(m->sender);
	c->rcpts = calloc(m->nrcpt ? m->nrcpt : 1, sizeof(*c->rcpts));
	if (c->sender == NULL || c->rcpts == NULL)
		goto fail;
	for (size_t i = 0; i < m->nrcpt; i++) {
		c->rcpts[i] = m->rcpts[i];
		c->rcpts[i].dsn_orcpt = NULL; /* queue_dsn_dup's */
		c->rcpts[i].addr = strdup(m->rcpts[i].addr);
		c->rcpts[i].reply = strdup(m->rcpts[i].reply);
		c->nrcpt = i + 1;
		if (c->rcpts[i].addr == NULL || c->rcpts[i].reply == NULL)
			goto fail;
	}
	if (queue_dsn_dup(c, m) < 0)
		goto fail;
	return c;
fail:
	queue_msg_free(c);
	return NULL;
}

char *queue_record_format(const struct queue_msg *m, size_t *len, struct err *e)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (f == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	fprintf(f, MAGIC "\nid %s\narrival %" PRId64 "\nsize %" PRIu64 "\nsender %s\n", m->id,
	        m->arrival, m->size, m->sender);
	if (m->flags & QUEUE_F_REQUIRETLS)
		fputs("flags requiretls\n", f);
	queue_dsn_format_msg(f, m);
	for (size_t i = 0; i < m->nrcpt; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		fprintf(f, "rcpt %s %u %" PRId64 " %s\nreply %s\n", queue_status_name(r->status),
		        r->attempts, r->next_attempt, r->addr, r->reply);
		queue_dsn_format_rcpt(f, r);
	}
	fputs("end\n", f);
	if (fclose(f) != 0) {
		free(buf);
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	*len = size;
	return buf;
}

/* A cursor over the record: one line at a time, strictly. */
struct cursor {
	const char *p, *end;
	const char *line; /* current line, without its LF */
	size_t n;
	struct err *e;
};

static int next_line(struct cursor *c, const char *key)
{
	size_t klen = strlen(key);
	const char *lf = memchr(c->p, '\n', (size_t)(c->end - c->p));

	if (lf == NULL)
		return err_set(c->e, ERR_INPUT, "queue_truncated", "record ends before \"%s\"",
		               key);
	c->line = c->p;
	c->n = (size_t)(lf - c->p);
	c->p = lf + 1;
	if (c->n < klen || memcmp(c->line, key, klen) != 0)
		return err_set(c->e, ERR_INPUT, "queue_record", "expected \"%s\"", key);
	if (!text_valid(c->line, c->n))
		return err_set(c->e, ERR_INPUT, "queue_record", "control character in \"%s\"", key);
	c->line += klen;
	c->n -= klen;
	return 0;
}

/* The value after "key ": at least one space-free token, or "" when allow_empty. */
static int value(struct cursor *c, const char *key, int allow_empty, const char **v, size_t *n)
{
	if (next_line(c, key) < 0)
		return -1;
	if (c->n == 0 || c->line[0] != ' ')
		return err_set(c->e, ERR_INPUT, "queue_record", "\"%s\" has no value", key);
	*v = c->line + 1;
	*n = c->n - 1;
	if (*n == 0 && !allow_empty)
		return err_set(c->e, ERR_INPUT, "queue_record", "\"%s\" is empty", key);
	return 0;
}

/* 1 when the next line starts with prefix (an optional line is there). */
static int peek(const struct cursor *c, const char *prefix)
{
	size_t n = strlen(prefix);

	return (size_t)(c->end - c->p) >= n && memcmp(c->p, prefix, n) == 0;
}

/* Decimal, no sign, no leading zero (except "0"), no overflow. */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static char *dup_n(const char *s, size_t n, struct err *e)
{
	char *d = strndup(s, n);

	if (d == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return d;
}

/* "rcpt STATUS ATTEMPTS NEXT ADDR" then "reply TEXT". */
static int parse_rcpt(struct cursor *c, struct queue_rcpt *r)
{
	const char *v, *tok[4];
	size_t n, tlen[4], k = 0;
	uint64_t u;

	if (value(c, "rcpt", 0, &v, &n) < 0)
		return -1;
	for (const char *p = v, *end = v + n; k < 4; k++) {
		const char *sp = k < 3 ? memchr(p, ' ', (size_t)(end - p)) : end;
		if (sp == NULL || sp == p)
			return err_set(c->e, ERR_INPUT, "queue_record", "malformed rcpt line");
		tok[k] = p;
		tlen[k] = (size_t)(sp - p);
		p = sp < end ? sp + 1 : end;
	}
	r->status = 4;
	for (int s = 0; s < 4; s++)
		if (strlen(status_names[s]) == tlen[0] &&
		    memcmp(status_names[s], tok[0], tlen[0]) == 0)
			r->status = (enum queue_status)s;
	if (r->status == 4)
		return err_set(c->e, ERR_INPUT, "queue_record", "unknown recipient status");
	if (parse_u64(tok[1], tlen[1], UINT32_MAX, &u) < 0)
		return err_set(c->e, ERR_INPUT, "queue_record", "bad attempt count");
	r->attempts = (unsigned)u;
	if (parse_u64(tok[2], tlen[2], INT64_MAX, &u) < 0)
		return err_set(c->e, ERR_INPUT, "queue_record", "bad next-attempt time");
	r->next_attempt = (int64_t)u;
	if ((r->addr = dup_n(tok[3], tlen[3], c->e)) == NULL)
		return -1;
	if (!queue_addr_valid(r->addr))
		return err_set(c->e, ERR_INPUT, "queue_record", "bad recipient address");
	if (value(c, "reply", 1, &v, &n) < 0)
		return -1;
	if (n > QUEUE_REPLY_MAX)
		return err_set(c->e, ERR_INPUT, "queue_record", "reply too long");
	if ((r->reply = dup_n(v, n, c->e)) == NULL)
		return -1;
	if (peek(c, "notify ") &&
	    (value(c, "notify", 0, &v, &n) < 0 || queue_dsn_parse_notify(v, n, r, c->e) < 0))
		return -1;
	if (peek(c, "orcpt ") &&
	    (value(c, "orcpt", 0, &v, &n) < 0 || queue_dsn_parse_orcpt(v, n, r, c->e) < 0))
		return -1;
	return 0;
}

static int parse_id(struct cursor *c, struct queue_msg *m)
{
	const char *v;
	size_t n;

	if (value(c, "id", 0, &v, &n) < 0)
		return -1;
	if (n >= QUEUE_ID_MAX || strspn(v, "0123456789abcdef") < n)
		return err_set(c->e, ERR_INPUT, "queue_record", "bad message id");
	memcpy(m->id, v, n);
	m->id[n] = '\0';
	return 0;
}

static int parse_envelope(struct cursor *c, struct queue_msg *m)
{
	const char *v;
	size_t n;
	uint64_t u;

	if (next_line(c, MAGIC) < 0)
		return -1;
	if (c->n != 0)
		return err_set(c->e, ERR_INPUT, "queue_record", "bad magic line");
	if (parse_id(c, m) < 0)
		return -1;
	if (value(c, "arrival", 0, &v, &n) < 0 || parse_u64(v, n, INT64_MAX, &u) < 0)
		return c->e->kind ? -1 : err_set(c->e, ERR_INPUT, "queue_record", "bad arrival");
	m->arrival = (int64_t)u;
	if (value(c, "size", 0, &v, &n) < 0 || parse_u64(v, n, UINT64_MAX, &m->size) < 0)
		return c->e->kind ? -1 : err_set(c->e, ERR_INPUT, "queue_record", "bad size");
	if (value(c, "sender", 1, &v, &n) < 0 || (m->sender = dup_n(v, n, c->e)) == NULL)
		return -1;
	if (n > 0 && !queue_addr_valid(m->sender))
		return err_set(c->e, ERR_INPUT, "queue_record", "bad sender address");
	if (peek(c, "flags ")) {
		if (value(c, "flags", 0, &v, &n) < 0)
			return -1;
		if (n != 10 || memcmp(v, "requiretls", 10) != 0)
			return err_set(c->e, ERR_INPUT, "queue_record", "unknown flags");
		m->flags = QUEUE_F_REQUIRETLS;
	}
	if (peek(c, "dsn-ret ") &&
	    (value(c, "dsn-ret", 0, &v, &n) < 0 || queue_dsn_parse_ret(v, n, m, c->e) < 0))
		return -1;
	if (peek(c, "dsn-envid ") &&
	    (value(c, "dsn-envid", 0, &v, &n) < 0 || queue_dsn_parse_envid(v, n, m, c->e) < 0))
		return -1;
	return 0;
}

static int at_end(const struct cursor *c)
{
	return (size_t)(c->end - c->p) >= 4 && memcmp(c->p, "end\n", 4) == 0;
}

struct queue_msg *queue_record_parse(const char *buf, size_t len, size_t *body_off, struct err *e)
{
	return queue_record_parse_head(buf, len, len, body_off, e);
}

struct queue_msg *queue_record_parse_head(const char *buf, size_t avail, uint64_t total,
                                          size_t *body_off, struct err *e)
{
	struct cursor c = {
	    .p = buf, .end = buf + (avail < QUEUE_HEADER_MAX ? avail : QUEUE_HEADER_MAX), .e = e};
	struct queue_msg *m = calloc(1, sizeof(*m));
	size_t cap = 0;

	err_clear(e);
	if (m == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		return NULL;
	}
	if (parse_envelope(&c, m) < 0)
		goto fail;
	while (!at_end(&c)) {
		if (m->nrcpt == QUEUE_MAX_RCPT) {
			err_set(e, ERR_INPUT, "queue_record", "too many recipients");
			goto fail;
		}
		if (m->nrcpt == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct queue_rcpt *r = reallocarray(m->rcpts, ncap, sizeof(*r));
			if (r == NULL) {
				err_set(e, ERR_INTERNAL, "internal", "out of memory");
				goto fail;
			}
			memset(r + cap, 0, (ncap - cap) * sizeof(*r));
			m->rcpts = r;
			cap = ncap;
		}
		m->nrcpt++;
		if (parse_rcpt(&c, &m->rcpts[m->nrcpt - 1]) < 0)
			goto fail;
	}
	if (m->nrcpt == 0) {
		err_set(e, ERR_INPUT, "queue_record", "no recipients");
		goto fail;
	}
	c.p += 4;
	*body_off = (size_t)(c.p - buf);
	if (total < *body_off || total - *body_off != m->size) {
		err_set(e, ERR_INPUT, "queue_truncated",
		        "message is %" PRIu64 " bytes, record says %" PRIu64,
		        total < *body_off ? 0 : total - *body_off, m->size);
		goto fail;
	}
	return m;
fail:
	queue_msg_free(m);
	return NULL;
}
