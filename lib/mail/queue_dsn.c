/*
 * queue_dsn.c - the DSN parameters (RFC 3461) of a queued message: checked on
 * submission and written as optional record lines (queue_record.c), so that a
 * spool file written before DSN existed reads back unchanged:
 *
 *   dsn-ret full|hdrs                 (after "flags", when RET was given)
 *   dsn-envid QQ314159                (then, when ENVID was given; xtext)
 *   notify success,delay | never      (after a recipient's "reply", when given)
 *   orcpt rfc822;bob@example.net      (then, when ORCPT was given; xtext)
 */
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "mail/queue_priv.h"

#define NOTIFY_ALL (DSN_NOTIFY_NEVER | DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY)

static int notify_ok(unsigned n)
{
	return (n & ~NOTIFY_ALL) == 0 && dsn_notify_valid(n);
}

/* NOTIFY as the queue record writes it: dsn_notify_format's words in lower case. */
static void notify_record_form(unsigned notify, char *out, size_t size)
{
	char upper[64];

	dsn_notify_format(notify, upper, sizeof(upper));
	text_lower_copy(out, size, upper);
}

int queue_msg_set_dsn(struct queue_msg *m, const struct queue_dsn *dsn, struct err *e)
{
	if (dsn->ret != DSN_RET_NONE && dsn->ret != DSN_RET_FULL && dsn->ret != DSN_RET_HDRS)
		return err_set(e, ERR_INPUT, "queue_dsn", "bad RET value");
	m->dsn_ret = dsn->ret;
	if (dsn->envid != NULL) {
		if (!dsn_envid_valid(dsn->envid, strlen(dsn->envid)))
			return err_set(e, ERR_INPUT, "queue_dsn", "bad ENVID");
		if ((m->dsn_envid = strdup(dsn->envid)) == NULL)
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	for (size_t i = 0; i < m->nrcpt; i++) {
		const char *o = dsn->orcpt != NULL ? dsn->orcpt[i] : NULL;
		unsigned n = dsn->notify != NULL ? dsn->notify[i] : 0;

		if (!notify_ok(n))
			return err_set(e, ERR_INPUT, "queue_dsn", "bad NOTIFY of recipient %zu", i);
		m->rcpts[i].dsn_notify = n;
		if (o == NULL)
			continue;
		if (!dsn_orcpt_valid(o, strlen(o)))
			return err_set(e, ERR_INPUT, "queue_dsn", "bad ORCPT of recipient %zu", i);
		if ((m->rcpts[i].dsn_orcpt = strdup(o)) == NULL)
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	return 0;
}

void queue_dsn_format_msg(FILE *f, const struct queue_msg *m)
{
	if (m->dsn_ret == DSN_RET_FULL)
		fputs("dsn-ret full\n", f);
	else if (m->dsn_ret == DSN_RET_HDRS)
		fputs("dsn-ret hdrs\n", f);
	if (m->dsn_envid != NULL)
		fprintf(f, "dsn-envid %s\n", m->dsn_envid);
}

void queue_dsn_format_rcpt(FILE *f, const struct queue_rcpt *r)
{
	char n[64];

	if (r->dsn_notify != 0) {
		notify_record_form(r->dsn_notify, n, sizeof(n));
		fprintf(f, "notify %s\n", n);
	}
	if (r->dsn_orcpt != NULL)
		fprintf(f, "orcpt %s\n", r->dsn_orcpt);
}

int queue_dsn_parse_ret(const char *v, size_t n, struct queue_msg *m, struct err *e)
{
	if (n == 4 && memcmp(v, "full", 4) == 0)
		m->dsn_ret = DSN_RET_FULL;
	else if (n == 4 && memcmp(v, "hdrs", 4) == 0)
		m->dsn_ret = DSN_RET_HDRS;
	else
		return err_set(e, ERR_INPUT, "queue_record", "bad dsn-ret");
	return 0;
}

int queue_dsn_parse_envid(const char *v, size_t n, struct queue_msg *m, struct err *e)
{
	if (!dsn_envid_valid(v, n))
		return err_set(e, ERR_INPUT, "queue_record", "bad dsn-envid");
	if ((m->dsn_envid = strndup(v, n)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return 0;
}

int queue_dsn_parse_notify(const char *v, size_t n, struct queue_rcpt *r, struct err *e)
{
	unsigned got;
	char canon[64];

	if (dsn_notify_parse(v, n, &got) < 0)
		return err_set(e, ERR_INPUT, "queue_record", "bad notify");
	/* strict: exactly what queue_dsn_format_rcpt writes */
	notify_record_form(got, canon, sizeof(canon));
	if (strlen(canon) != n || memcmp(canon, v, n) != 0)
		return err_set(e, ERR_INPUT, "queue_record", "bad notify");
	r->dsn_notify = got;
	return 0;
}

int queue_dsn_parse_orcpt(const char *v, size_t n, struct queue_rcpt *r, struct err *e)
{
	if (!dsn_orcpt_valid(v, n))
		return err_set(e, ERR_INPUT, "queue_record", "bad orcpt");
	if ((r->dsn_orcpt = strndup(v, n)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return 0;
}

int queue_dsn_dup(struct queue_msg *c, const struct queue_msg *m)
{
	c->dsn_ret = m->dsn_ret;
	if (m->dsn_envid != NULL && (c->dsn_envid = strdup(m->dsn_envid)) == NULL)
		return -1;
	for (size_t i = 0; i < c->nrcpt && i < m->nrcpt; i++) {
		c->rcpts[i].dsn_notify = m->rcpts[i].dsn_notify;
		c->rcpts[i].dsn_orcpt = NULL;
		if (m->rcpts[i].dsn_orcpt != NULL &&
		    (c->rcpts[i].dsn_orcpt = strdup(m->rcpts[i].dsn_orcpt)) == NULL)
			return -1;
	}
	return 0;
}
