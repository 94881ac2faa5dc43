/* settings.c - the one table of anchor-policyd parameters: name, type, default, bounds. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "policyd.h"

#define S(field) offsetof(struct policy_settings, field)

const struct conf_param policy_settings_table[] = {
    {"listen", CONF_STR, "127.0.0.1:10040", 0, 0, S(listen),
     "ADDRESS:PORT ([::1]:PORT for IPv6) or unix:/path of the policy socket"},
    {"reputation_url", CONF_STR, "https://127.0.0.1:8444", 0, 0, S(reputation_url),
     "base URL of anchor-reputation's HTTPS API"},
    {"cacert", CONF_STR, NULL, 0, 0, S(cacert),
     "CA certificates (PEM) for anchor-reputation's certificate; unset: the system's"},
    {"timeout_ms", CONF_INT, "300", 10, 60000, S(timeout_ms),
     "longest wait for anchor-reputation per query (Postfix waits 100s at most)"},
    {"reputation_connections", CONF_INT, "16", 1, 1024, S(reputation_connections),
     "most connections open to anchor-reputation at once (more queries wait for one); "
     "keep it below the service's max_connections_per_ip (32 by default)"},
    {"cache_ttl", CONF_DURATION, "300s", 0, 86400, S(cache_ttl),
     "seconds a verdict is reused for the same client; 0 disables the cache"},
    {"cache_size", CONF_INT, "65536", 1, 16777216, S(cache_size), "verdicts kept in memory"},
    {"backoff", CONF_DURATION, "2s", 0, 3600, S(backoff),
     "after a failed query, answer on_error at once for this long"},
    {"on_error", CONF_STR, "dunno", 0, 0, S(on_error),
     "when anchor-reputation cannot answer: dunno (fail open), defer_if_permit, defer or "
     "reject (fail closed)"},
    {"block_action", CONF_STR, "reject", 0, 0, S(block_action),
     "for a block verdict: reject, defer, defer_if_permit, prepend or dunno"},
    {"unknown_action", CONF_STR, "dunno", 0, 0, S(unknown_action),
     "for an unknown verdict: dunno or prepend"},
    {"known_action", CONF_STR, "dunno", 0, 0, S(known_action),
     "for a known verdict: dunno, prepend or ok"},
    {"trusted_action", CONF_STR, "dunno", 0, 0, S(trusted_action),
     "for a trusted verdict: dunno, prepend or ok"},
    {"header_name", CONF_STR, "X-Anchor-Reputation", 0, 0, S(header_name),
     "header added by the prepend action"},
    {"query_helo", CONF_BOOL, "yes", 0, 1, S(query_helo),
     "send the HELO name too (anchor-reputation checks it with CSA)"},
    {"query_sender_domain", CONF_BOOL, "yes", 0, 1, S(query_sender_domain),
     "send the envelope sender's domain too"},
    {"max_line", CONF_SIZE, "4k", 256, 1048576, S(max_line),
     "longest attribute line; a longer one closes the connection"},
    {"max_attrs", CONF_INT, "100", 8, 10000, S(max_attrs), "attributes in one request"},
    {"max_connections", CONF_INT, "1000", 1, 100000, S(max_connections),
     "simultaneous policy connections"},
    {"idle_timeout", CONF_DURATION, "300s", 1, 86400, S(idle_timeout),
     "a connection silent this long is closed (Postfix keeps them 300s at most)"},
    {"log_level", CONF_STR, "info", 0, 0, S(log_level), "error, warning, info or debug"},
    {"syslog", CONF_BOOL, "no", 0, 1, S(syslog), "log to syslog instead of stderr"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

static const char *const act_names[] = {
    [POLICY_DUNNO] = "dunno",
    [POLICY_OK] = "ok",
    [POLICY_REJECT] = "reject",
    [POLICY_DEFER] = "defer",
    [POLICY_DEFER_IF_PERMIT] = "defer_if_permit",
    [POLICY_PREPEND] = "prepend",
};

int policy_act_parse(const char *name, enum policy_act *out)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(act_names) / sizeof(act_names[0]); i++)
		if (strcasecmp(name, act_names[i]) == 0) {
			*out = (enum policy_act)i;
			return 0;
		}
	return -1;
}

const char *policy_act_name(enum policy_act a)
{
	return (size_t)a < sizeof(act_names) / sizeof(act_names[0]) ? act_names[a] : "?";
}

/* name's value must be one of allowed (a bit set of enum policy_act). */
static int one_of(const char *param, const char *value, unsigned allowed, enum policy_act *out,
                  struct err *e)
{
	char list[128] = "";
	size_t i, pos = 0;

	if (policy_act_parse(value, out) == 0 && (allowed & (1u << *out)))
		return 0;
	for (i = 0; i < sizeof(act_names) / sizeof(act_names[0]); i++)
		if (allowed & (1u << i))
			pos += (size_t)snprintf(list + pos, sizeof(list) - pos, "%s%s",
			                        pos ? ", " : "", act_names[i]);
	return err_set(e, ERR_INPUT, "bad_config", "%s = %.40s: use one of %s", param,
	               value ? value : "", list);
}

#define BIT(a) (1u << (a))

int policy_settings_check(const struct policy_settings *s, struct policy_actions *a, struct err *e)
{
	enum log_level lvl;
	const char *h;

	if (one_of("on_error", s->on_error,
	           BIT(POLICY_DUNNO) | BIT(POLICY_DEFER_IF_PERMIT) | BIT(POLICY_DEFER) |
	               BIT(POLICY_REJECT),
	           &a->on_error, e) < 0 ||
	    one_of("block_action", s->block_action,
	           BIT(POLICY_REJECT) | BIT(POLICY_DEFER) | BIT(POLICY_DEFER_IF_PERMIT) |
	               BIT(POLICY_PREPEND) | BIT(POLICY_DUNNO),
	           &a->block, e) < 0 ||
	    one_of("unknown_action", s->unknown_action, BIT(POLICY_DUNNO) | BIT(POLICY_PREPEND),
	           &a->unknown, e) < 0 ||
	    one_of("known_action", s->known_action,
	           BIT(POLICY_DUNNO) | BIT(POLICY_PREPEND) | BIT(POLICY_OK), &a->known, e) < 0 ||
	    one_of("trusted_action", s->trusted_action,
	           BIT(POLICY_DUNNO) | BIT(POLICY_PREPEND) | BIT(POLICY_OK), &a->trusted, e) < 0)
		return -1;
	if (s->reputation_url == NULL || (strncmp(s->reputation_url, "https://", 8) != 0 &&
	                                  strncmp(s->reputation_url, "http://", 7) != 0))
		return err_set(e, ERR_INPUT, "bad_config",
		               "reputation_url must be an https:// URL of anchor-reputation");
	if (s->listen == NULL || s->listen[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_config", "listen is empty");
	for (h = s->header_name; h != NULL && *h; h++)
		if (*h <= ' ' || *h >= 0x7f || *h == ':')
			return err_set(
			    e, ERR_INPUT, "bad_config",
			    "header_name must be a header field name (printable, no colon)");
	if (s->header_name == NULL || s->header_name[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_config", "header_name is empty");
	if (log_level_parse(s->log_level, &lvl) < 0)
		return err_set(e, ERR_INPUT, "bad_config",
		               "log_level = %.20s: use error, warning, info or debug",
		               s->log_level);
	return 0;
}
