/*
 * netlist.c - lists of addresses and CIDR prefixes ("127.0.0.1, 10.0.0.0/8, ::1"), as
 * in own_networks: the operator's own servers, which a complaint's source walk skips.
 * Lists are short and read rarely (once per complaint), so they are parsed on each use
 * rather than kept compiled.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

#define ITEM_MAX 64 /* "ffff:...:ffff/128" fits */

struct prefix {
	int family;
	unsigned char addr[16];
	int bits;
};

/* One item ("ADDR" or "ADDR/BITS"): 0, or -1 when it is neither. */
static int prefix_parse(const char *item, struct prefix *p)
{
	char buf[ITEM_MAX], *slash, *end;
	long bits;
	int max;

	if (snprintf(buf, sizeof(buf), "%s", item) >= (int)sizeof(buf))
		return -1;
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, p->addr) == 1) {
		p->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, p->addr) == 1) {
		p->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	p->bits = max;
	if (slash != NULL) {
		bits = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > max)
			return -1;
		p->bits = (int)bits;
	}
	return 0;
}

static int prefix_has(const struct prefix *p, int family, const unsigned char *addr)
{
	int full = p->bits / 8, rest = p->bits % 8;

	if (p->family != family || memcmp(p->addr, addr, (size_t)full) != 0)
		return 0;
	return rest == 0 || ((p->addr[full] ^ addr[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* Calls fn on each blank-trimmed, comma-separated item of list until it returns non-zero;
 * returns that value, or 0. */
static int each_item(const char *list, int (*fn)(const char *item, void *arg), void *arg)
{
	const char *p = list;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char item[ITEM_MAX + 1];
		int rc;

		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0) {
			snprintf(item, sizeof(item), "%.*s", (int)(n > ITEM_MAX ? ITEM_MAX + 1 : n),
			         p);
			if ((rc = fn(item, arg)) != 0)
				return rc;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

struct check_arg {
	const char *setting;
	struct err *e;
};

static int check_one(const char *item, void *arg)
{
	struct check_arg *a = arg;
	struct prefix p;

	if (prefix_parse(item, &p) == 0)
		return 0;
	return err_set(a->e, ERR_INPUT, "bad_config",
	               "%s: \"%.64s\" is not an address or an address/prefix-length", a->setting,
	               item);
}

int relay_netlist_check(const char *setting, const char *list, struct err *e)
{
	struct check_arg a = {setting, e};

	return list == NULL ? 0 : each_item(list, check_one, &a);
}

struct match_arg {
	int family;
	unsigned char addr[16];
};

static int match_one(const char *item, void *arg)
{
	struct match_arg *m = arg;
	struct prefix p;

	return prefix_parse(item, &p) == 0 && prefix_has(&p, m->family, m->addr);
}

int relay_netlist_match(const char *list, const char *ip)
{
	struct match_arg m;

	if (list == NULL || ip == NULL)
		return 0;
	if (inet_pton(AF_INET, ip, m.addr) == 1)
		m.family = AF_INET;
	else if (inet_pton(AF_INET6, ip, m.addr) == 1)
		m.family = AF_INET6;
	else
		return 0;
	return each_item(list, match_one, &m) == 1;
}
