/*
 * txn_dsn.c - a transaction's DSN parameters (RFC 3461) on their way from the
 * SMTP session to the queue: MAIL's RET and ENVID, and per accepted recipient
 * NOTIFY and ORCPT, in step with the connection's recipient list.  The session
 * has already checked every value (lib/mail/dsn.h); the queue checks again.
 */
#include <stdlib.h>
#include <string.h>

#include "relayd.h"

void relayd_txn_dsn_mail(struct relayd_conn *c, const struct smtp_command *cmd)
{
	c->dsn.ret = cmd->dsn_ret;
	memcpy(c->dsn.envid, cmd->dsn_envid, sizeof(c->dsn.envid));
}

/* A RCPT may be decided later (recipient verification): its parameters wait here until
 * relayd_txn_add_rcpt() takes the recipient. */
void relayd_txn_dsn_rcpt(struct relayd_conn *c, const struct smtp_command *cmd)
{
	c->dsn.next_notify = cmd->dsn_notify;
	memcpy(c->dsn.next_orcpt, cmd->dsn_orcpt, sizeof(c->dsn.next_orcpt));
}

int relayd_txn_dsn_add(struct relayd_conn *c, size_t nrcpt)
{
	unsigned *n = realloc(c->dsn.notify, nrcpt * sizeof(*n));
	char **o;

	if (n == NULL)
		return -1;
	c->dsn.notify = n;
	if ((o = realloc(c->dsn.orcpt, nrcpt * sizeof(*o))) == NULL)
		return -1;
	c->dsn.orcpt = o;
	o[nrcpt - 1] = NULL;
	if (c->dsn.next_orcpt[0] != '\0' && (o[nrcpt - 1] = strdup(c->dsn.next_orcpt)) == NULL)
		return -1;
	n[nrcpt - 1] = c->dsn.next_notify;
	c->dsn.next_notify = 0;
	c->dsn.next_orcpt[0] = '\0';
	return 0;
}

void relayd_txn_dsn_reset(struct relayd_conn *c)
{
	for (size_t i = 0; c->dsn.orcpt != NULL && i < c->nrcpt; i++)
		free(c->dsn.orcpt[i]);
	free(c->dsn.orcpt);
	free(c->dsn.notify);
	memset(&c->dsn, 0, sizeof(c->dsn));
}
