/*
 * partial_view.c - receiver-chosen transfer (partial.h): the settings and the Anchor-Partial field
 * a sender puts before a view.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/text.h"
#include "partial.h"
#include "peers.h"

int relay_partial_settings_check(const struct relay_settings *s, struct err *e)
{
	enum mail_view v;

	if (mail_view_parse(s->partial_view, strlen(s->partial_view), &v) < 0)
		return err_set(
		    e, ERR_INPUT, "bad_config",
		    "partial_view must be headers, signers, hash, text or full, not '%s'",
		    s->partial_view);
	if (*s->partial_tiers != '\0' && strcasecmp(s->partial_tiers, "unknown") != 0)
		return err_set(e, ERR_INPUT, "bad_config",
		               "partial_tiers must be unknown or empty, not '%s'",
		               s->partial_tiers);
	return relay_peers_check(s->anchored_peers, e);
}

void relay_partial_hex(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int relay_partial_is_hex(const char *s, size_t n)
{
	return text_is_lower_hex(s, n) && s[n] == '\0';
}

/* ---- the field ---- */

enum { K_VIEW = 1, K_SIZE = 2, K_SHA = 4, K_TOKEN = 8, K_FETCH = 16, K_ALL = 31 };

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* "ADDR:PORT" or "[ADDR6]:PORT", ADDR an address literal. */
static int parse_fetch(const char *v, struct relay_partial_meta *out)
{
	const char *colon;
	char host[64];
	unsigned char a[16];
	char *end;
	unsigned long port;

	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (close == NULL || close[1] != ':' || (size_t)(close - v - 1) >= sizeof(host))
			return -1;
		snprintf(host, sizeof(host), "%.*s", (int)(close - v - 1), v + 1);
		colon = close + 1;
		if (inet_pton(AF_INET6, host, a) != 1)
			return -1;
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL || (size_t)(colon - v) >= sizeof(host))
			return -1;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - v), v);
		if (inet_pton(AF_INET, host, a) != 1)
			return -1;
	}
	if (colon[1] < '1' || colon[1] > '9')
		return -1;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port > 65535)
		return -1;
	snprintf(out->host, sizeof(out->host), "%s", host);
	out->port = (uint16_t)port;
	return 0;
}

/* One "key=value" item (blanks trimmed); the key's bit, or -1 (e set). */
static int meta_item(const char *k, size_t kl, const char *v, struct relay_partial_meta *out,
                     struct err *e)
{
	char *end;

	if (kl == 4 && strncmp(k, "view", 4) == 0) {
		if (mail_view_parse(v, strlen(v), &out->view) < 0 || out->view == MAIL_VIEW_FULL)
			return err_set(e, ERR_INPUT, "bad_partial", "unknown view '%.20s'", v);
		return K_VIEW;
	}
	if (kl == 4 && strncmp(k, "size", 4) == 0) {
		if (v[0] < '0' || v[0] > '9' || strlen(v) > 15)
			return err_set(e, ERR_INPUT, "bad_partial", "bad size");
		out->size = strtoull(v, &end, 10);
		return *end == '\0' ? K_SIZE : err_set(e, ERR_INPUT, "bad_partial", "bad size");
	}
	if (kl == 6 && strncmp(k, "sha256", 6) == 0) {
		if (!relay_partial_is_hex(v, 64))
			return err_set(e, ERR_INPUT, "bad_partial", "bad sha256");
		memcpy(out->sha256, v, 65);
		return K_SHA;
	}
	if (kl == 5 && strncmp(k, "token", 5) == 0) {
		if (!relay_partial_is_hex(v, RELAY_PARTIAL_TOKEN_HEX))
			return err_set(e, ERR_INPUT, "bad_partial", "bad token");
		memcpy(out->token, v, RELAY_PARTIAL_TOKEN_HEX + 1);
		return K_TOKEN;
	}
	if (kl == 5 && strncmp(k, "fetch", 5) == 0)
		return parse_fetch(v, out) == 0 ? K_FETCH
		                                : err_set(e, ERR_INPUT, "bad_partial", "bad fetch");
	return err_set(e, ERR_INPUT, "bad_partial", "unknown key '%.*s'", (int)(kl > 20 ? 20 : kl),
	               k);
}

int relay_partial_meta_parse(const char *value, size_t len, struct relay_partial_meta *out,
                             struct err *e)
{
	size_t i = 0;
	int seen = 0;

	memset(out, 0, sizeof(*out));
	while (i < len) {
		size_t ks, ke, vs, ve;
		char v[128];
		int bit;

		while (i < len && is_blank(value[i]))
			i++;
		for (ks = i; i < len && value[i] != '=' && value[i] != ';' && !is_blank(value[i]);
		     i++)
			;
		ke = i;
		if (i >= len || value[i] != '=' || ke == ks)
			return err_set(e, ERR_INPUT, "bad_partial", "expected key=value");
		for (vs = ++i; i < len && value[i] != ';' && !is_blank(value[i]); i++)
			;
		ve = i;
		while (i < len && is_blank(value[i]))
			i++;
		if (i < len && value[i] != ';')
			return err_set(e, ERR_INPUT, "bad_partial", "expected ';'");
		i += i < len;
		if (ve - vs >= sizeof(v) || memchr(value + vs, '\0', ve - vs) != NULL)
			return err_set(e, ERR_INPUT, "bad_partial", "value too long");
		memcpy(v, value + vs, ve - vs);
		v[ve - vs] = '\0';
		if ((bit = meta_item(value + ks, ke - ks, v, out, e)) < 0)
			return -1;
		if (seen & bit)
			return err_set(e, ERR_INPUT, "bad_partial", "a key given twice");
		seen |= bit;
	}
	if (seen != K_ALL)
		return err_set(e, ERR_INPUT, "bad_partial",
		               "view, size, sha256, token and fetch "
		               "are required");
	return 0;
}

char *relay_partial_meta_field(const struct relay_partial_meta *m)
{
	char *out;
	int v6 = strchr(m->host, ':') != NULL;

	if (asprintf(&out,
	             RELAY_PARTIAL_FIELD ": view=%s; size=%llu; sha256=%s;\r\n\ttoken=%s;\r\n"
	                                 "\tfetch=%s%s%s:%u\r\n",
	             mail_view_name(m->view), m->size, m->sha256, m->token, v6 ? "[" : "", m->host,
	             v6 ? "]" : "", (unsigned)m->port) < 0)
		return NULL;
	return out;
}

char **relay_partial_rcpts(const struct relay_settings *s, struct relay_lists *l,
                           const struct relay_auth *a, char *const *rcpts, size_t n)
{
	char **out = calloc(n + 1, sizeof(*out)), why[200];

	for (size_t i = 0; out != NULL && i < n; i++) {
		struct relay_tier_input in = {.auth = a};

		in.list = relay_tier_lists(l, rcpts[i], a);
		if ((out[i] = relay_tier_rcpt(s, rcpts[i],
		                              relay_tier_decide(&in, why, sizeof(why)))) == NULL) {
			relay_partial_rcpts_free(out, i);
			return NULL;
		}
	}
	return out;
}

void relay_partial_rcpts_free(char **r, size_t n)
{
	for (size_t i = 0; r != NULL && i < n; i++)
		free(r[i]);
	free(r);
}
