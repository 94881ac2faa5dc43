/*
 * networks.c - how many independent networks stand behind a set of reporters (rep.h).
 *
 * A reporter names its networks in DNS (netdns.c): its mail servers' and key server's
 * addresses per /24 or /48.  Several reporters may share a network (a ring on one host,
 * or customers of one key server provider) and one reporter may name many (or name other
 * people's).  Counting distinct names would let one reporter that names ten networks
 * count ten times; counting reporters would let ten on one host count ten times.  So the
 * count is a bipartite matching: the most reporters that can each be given a network of
 * their own.  Ten ring domains on one /24 count as one; a domain naming ten /24s as one;
 * honest reporters sharing a key server provider but each with its own mail servers
 * count one each.  Vetted reporters and peers are networks of their own (the operator
 * vouched for them); a reporter with no network counts for none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct rep_nets {
	int n;      /* contributors */
	char **tok; /* distinct network names */
	int ntok, captok;
	int *first; /* per contributor: its edges are edge[first[i] .. first[i + 1]) */
	int *edge;  /* token ids */
	int nedge, capedge;
	int *owner; /* per token: the contributor it is given to, -1 */
	int *given; /* per contributor: its token, -1 */
	char *seen; /* per token, during one search */
};

void rep_nets_free(struct rep_nets *m)
{
	if (m == NULL)
		return;
	for (int i = 0; i < m->ntok; i++)
		free(m->tok[i]);
	free(m->tok);
	free(m->first);
	free(m->edge);
	free(m->owner);
	free(m->given);
	free(m->seen);
	free(m);
}

static int token_id(struct rep_nets *m, const char *name, size_t len)
{
	for (int i = 0; i < m->ntok; i++)
		if (strlen(m->tok[i]) == len && memcmp(m->tok[i], name, len) == 0)
			return i;
	if (m->ntok == m->captok) {
		int cap = m->captok ? m->captok * 2 : 16;
		char **v = realloc(m->tok, (size_t)cap * sizeof(*v));

		if (v == NULL)
			return -1;
		m->tok = v;
		m->captok = cap;
	}
	if ((m->tok[m->ntok] = strndup(name, len)) == NULL)
		return -1;
	return m->ntok++;
}

static int add_edge(struct rep_nets *m, const char *name, size_t len)
{
	int t = token_id(m, name, len);

	if (t < 0)
		return -1;
	for (int k = m->first[m->n]; k < m->nedge; k++) /* one reporter names it once */
		if (m->edge[k] == t)
			return 0;
	if (m->nedge == m->capedge) {
		int cap = m->capedge ? m->capedge * 2 : 32;
		int *v = realloc(m->edge, (size_t)cap * sizeof(*v));

		if (v == NULL)
			return -1;
		m->edge = v;
		m->capedge = cap;
	}
	m->edge[m->nedge++] = t;
	return 0;
}

/* Contributor i's networks: its own (vetted or peer), or the names in its net. */
static int add_contrib(struct rep_nets *m, const struct rep_contrib *c)
{
	char own[300];

	if (c->peer || c->vetted) {
		snprintf(own, sizeof(own), "=%s", c->reporter);
		return add_edge(m, own, strlen(own));
	}
	for (const char *p = c->net; *p;) {
		size_t len = strcspn(p, " ");

		if (len > 0 && add_edge(m, p, len) < 0)
			return -1;
		p += len;
		p += strspn(p, " ");
	}
	return 0;
}

struct rep_nets *rep_nets_new(const struct rep_contrib *c, int n)
{
	struct rep_nets *m = calloc(1, sizeof(*m));

	if (m == NULL || (m->first = calloc((size_t)n + 1, sizeof(int))) == NULL ||
	    (m->given = calloc((size_t)n + 1, sizeof(int))) == NULL)
		goto fail;
	for (m->n = 0; m->n < n; m->n++) {
		m->first[m->n] = m->nedge;
		if (add_contrib(m, &c[m->n]) < 0)
			goto fail;
	}
	m->first[n] = m->nedge;
	if ((m->owner = calloc((size_t)m->ntok + 1, sizeof(int))) == NULL ||
	    (m->seen = calloc((size_t)m->ntok + 1, 1)) == NULL)
		goto fail;
	return m;
fail:
	rep_nets_free(m);
	return NULL;
}

/* Kuhn's augmenting path from contributor u; depth is bounded by the tokens. */
static int augment(struct rep_nets *m, int u)
{
	for (int k = m->first[u]; k < m->first[u + 1]; k++) {
		int t = m->edge[k];

		if (m->seen[t])
			continue;
		m->seen[t] = 1;
		if (m->owner[t] < 0 || augment(m, m->owner[t])) {
			m->owner[t] = u;
			m->given[u] = t;
			return 1;
		}
	}
	return 0;
}

int rep_nets_count(struct rep_nets *m, const int *use, int *group)
{
	int count = 0;

	if (m == NULL)
		return 0;
	for (int t = 0; t < m->ntok; t++)
		m->owner[t] = -1;
	for (int i = 0; i < m->n; i++) {
		m->given[i] = -1;
		if (!use[i] || m->first[i] == m->first[i + 1])
			continue;
		memset(m->seen, 0, (size_t)m->ntok);
		count += augment(m, i);
	}
	for (int i = 0; group != NULL && i < m->n; i++)
		/* a reporter left without a network of its own shares its first one */
		group[i] = m->given[i] >= 0                ? m->given[i]
		           : m->first[i] < m->first[i + 1] ? m->edge[m->first[i]]
		                                           : -1;
	return count;
}
