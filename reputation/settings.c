/* settings.c - the one table of anchor-reputation parameters: name, type, default, bounds. */
#include "settings.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/name.h"
#include "core/log.h"

#define S(field) offsetof(struct rep_settings, field)
#define KB 1024LL
#define DAY (86400LL)

const struct conf_param rep_settings_table[] = {
    {"listen_address", CONF_STR, "127.0.0.1", 0, 0, S(listen_address),
     "address to listen on (IPv4 or IPv6; \"::\" for all)"},
    {"listen_port", CONF_INT, "8444", 0, 65535, S(listen_port), "TCP port; 0 picks a free one"},
    {"port_file", CONF_STR, NULL, 0, 0, S(port_file), "write the bound port here (for tests)"},
    {"tls_cert_file", CONF_STR, NULL, 0, 0, S(tls_cert_file), "PEM certificate chain for HTTPS"},
    {"tls_key_file", CONF_STR, NULL, 0, 0, S(tls_key_file), "PEM private key for HTTPS"},
    {"allow_plain_http", CONF_BOOL, "no", 0, 1, S(allow_plain_http),
     "serve plain HTTP (only behind a TLS terminator)"},
    {"max_body", CONF_SIZE, "256k", 1 * KB, 16 * KB *KB, S(max_body),
     "largest request body (a batch of queries, a report, an ARF message)"},
    {"http_threads", CONF_INT, "2", 1, 256, S(http_threads), "HTTP worker threads"},
    {"max_connections", CONF_INT, "1024", 1, 65536, S(max_connections), "simultaneous connections"},
    {"max_connections_per_ip", CONF_INT, "32", 1, 65536, S(max_connections_per_ip),
     "simultaneous connections from one client address (more are closed at once)"},
    {"conn_timeout", CONF_DURATION, "30s", 1, 3600, S(conn_timeout),
     "idle timeout of a connection that has sent a request (keep-alive)"},
    {"request_timeout", CONF_DURATION, "10s", 1, 3600, S(request_timeout),
     "a new connection silent this long before its first request (TLS handshake "
     "included) is closed; at most conn_timeout"},
    {"tls_ticket_rotation", CONF_DURATION, "1h", 1, 3 * 86400, S(tls_ticket_rotation),
     "a fresh TLS session ticket key this often; tickets under the one before are "
     "still accepted for one more period"},
    TLS_POLICY_CONF_PARAMS(S(tls)),
    {"rate_limit", CONF_INT, "200", 0, 1000000, S(rate_limit),
     "requests per second per client address; 0 disables"},
    {"rate_burst", CONF_INT, "400", 1, 10000000, S(rate_burst), "burst per client address"},
    {"db_conninfo", CONF_STR, "dbname=anchor", 0, 0, S(db_conninfo), "libpq connection string"},
    {"db_pool_size", CONF_INT, "8", 1, 256, S(db_pool_size),
     "database connections (to the primary, and as many again to the replica if any)"},
    {"db_read_conninfo", CONF_STR, NULL, 0, 0, S(db_read_conninfo),
     "libpq connection string for GET requests, e.g. a streaming replica "
     "(target_session_attrs=prefer-standby); unset: db_conninfo"},
    {"db_read_wait_ms", CONF_INT, "200", 0, 10000, S(db_read_wait_ms),
     "how long a GET waits for the replica to replay this node's last write before the "
     "primary answers it instead"},
    {"sql_dir", CONF_STR, "/usr/local/share/anchor/sql", 0, 0, S(sql_dir),
     "directory of schema migrations"},
    {"migrate_on_start", CONF_BOOL, "yes", 0, 1, S(migrate_on_start),
     "apply pending migrations at start"},
    {"operator_token_hash", CONF_STR, NULL, 0, 0, S(operator_token_hash),
     "hex SHA-256 of the operator token; unset disables the operator API"},
    {"half_life", CONF_DURATION, "7d", 60, 3650 * DAY, S(half_life),
     "evidence loses half its weight in this time"},
    {"min_reporters", CONF_INT, "3", 1, 1000, S(min_reporters),
     "distinct reporting domains that must agree before a subject is listed or trusted"},
    {"list_weight", CONF_STR, "2.5", 0, 0, S(list_weight),
     "decayed bad weight a subject needs to be listed"},
    {"trust_weight", CONF_STR, "2.5", 0, 0, S(trust_weight),
     "decayed verified good weight a subject needs to be trusted"},
    {"reporter_cap", CONF_STR, "1", 0, 0, S(reporter_cap),
     "most weight one reporting domain (or one federation peer) adds to one subject"},
    {"network_cap", CONF_STR, "1.5", 0, 0, S(network_cap),
     "most weight all reporters submitting from one network add to one subject"},
    {"network_prefix4", CONF_INT, "24", 8, 32, S(network_prefix4),
     "IPv4 prefix length that makes a reporter network"},
    {"network_prefix6", CONF_INT, "48", 16, 128, S(network_prefix6),
     "IPv6 prefix length that makes a reporter network"},
    {"standing_default", CONF_STR, "1", 0, 0, S(standing_default),
     "a new reporter's standing (its weight per report)"},
    {"standing_min", CONF_STR, "0.1", 0, 0, S(standing_min), "lowest standing"},
    {"standing_max", CONF_STR, "2", 0, 0, S(standing_max), "highest standing"},
    {"standing_interval", CONF_DURATION, "10m", 1, DAY, S(standing_interval),
     "how often reporters' standing is recomputed from agreement with the others"},
    {"min_networks", CONF_INT, "3", 0, 1000, S(min_networks),
     "independent reporter networks a verdict needs besides min_reporters domains; a "
     "reporter's networks are its mail servers' (MX) and key server's addresses from DNS, "
     "per network_prefix4/6; at most min_reporters are asked; 0 disables"},
    {"network_ttl", CONF_DURATION, "1h", 5, DAY, S(network_ttl),
     "longest time a reporter's networks, resolved from DNS, are reused (at most the "
     "answers' TTL)"},
    {"burst_reporters", CONF_INT, "5", 0, 1000, S(burst_reporters),
     "this many reporters first seen within burst_window of each other that report one "
     "subject while new are a burst: held back from its verdict; 0 disables"},
    {"burst_window", CONF_DURATION, "1d", 60, 365 * DAY, S(burst_window),
     "the window of a burst of new reporters (burst_reporters)"},
    {"newcomer_ramp", CONF_DURATION, "14d", 0, 365 * DAY, S(newcomer_ramp),
     "a reporter domain's weight grows from 0 to its standing over this time since the "
     "service first saw it (vetted reporters and peers weigh fully at once); 0 disables"},
    {"signed_evidence", CONF_BOOL, "yes", 0, 1, S(signed_evidence),
     "domain, signer and address subjects count only with a DKIM-signed message the "
     "service verifies for them; no: trust the reporter's word (a ring can frame any "
     "domain)"},
    {"spamtraps", CONF_STR, NULL, 0, 0, S(spamtraps),
     "ground truth: spamtrap addresses (user@domain) and domains (every address at it), "
     "comma-separated; a vetted reporter's report with \"trap\" naming one lists its "
     "subjects"},
    {"vetted_reporters", CONF_STR, NULL, 0, 0, S(vetted_reporters),
     "reporters the operator vetted, \"DOMAIN WEIGHT, ...\": their fixed weight per "
     "report; with spamtrap hits the ground truth that judges every other reporter"},
    {"report_rate", CONF_STR, "5", 0, 0, S(report_rate),
     "reports per second per reporter domain (token bucket); 0 disables"},
    {"report_burst", CONF_INT, "200", 1, 10000000, S(report_burst),
     "burst of reports per reporter domain"},
    {"max_report_age", CONF_DURATION, "90d", 60, 3650 * DAY, S(max_report_age),
     "reports observed longer ago than this are refused"},
    {"max_clock_skew", CONF_DURATION, "1h", 0, DAY, S(max_clock_skew),
     "how far in the future an observation time may lie"},
    {"batch_max", CONF_INT, "100", 1, 10000, S(batch_max), "queries in one batch"},
    {"answer_cache_ttl", CONF_DURATION, "30s", 0, 3600, S(answer_cache_ttl),
     "how long a subject's answer is reused (this node's own changes show at once); 0: "
     "never"},
    {"answer_cache_bytes", CONF_SIZE, "32m", 64 * 1024, 16LL * 1024 * 1024 * 1024,
     S(answer_cache_bytes),
     "memory for reused answers (the JSON of each, estimated, with its key and bookkeeping); "
     "the oldest go first"},
    {"dns_cache_bytes", CONF_SIZE, "4m", 64 * 1024, 16LL * 1024 * 1024 * 1024, S(dns_cache_bytes),
     "memory for the DNS zone's reused verdicts (each with its name and bookkeeping)"},
    {"resolver", CONF_STR, NULL, 0, 0, S(resolver),
     "ADDR[:PORT] of the DNS resolver (else ANCHOR_RESOLVER, else /etc/resolv.conf)"},
    {"trust_anchor_file", CONF_STR, NULL, 0, 0, S(trust_anchor_file),
     "DNSSEC trust anchor (else ANCHOR_TRUST_ANCHOR; unset: unvalidated)"},
    {"cacert", CONF_STR, NULL, 0, 0, S(cacert),
     "CA file for key servers' and peers' TLS (else ANCHOR_CACERT, else the system store)"},
    {"dns_timeout_ms", CONF_INT, "2000", 100, 60000, S(dns_timeout_ms),
     "per DNS query and connect"},
    {"key_status_ttl", CONF_DURATION, "60s", 0, 3600, S(key_status_ttl),
     "seconds the key server's answer on the status of a signer's key (reports, delisting, "
     "federation) is reused (0: ask every time); a revoked or superseded key stops within "
     "this time"},
    {"key_status_cache_size", CONF_INT, "4096", 1, 1000000, S(key_status_cache_size),
     "key status answers kept; the oldest goes when full"},
    {"provider_domain", CONF_STR, NULL, 0, 0, S(provider_domain),
     "this provider's own anchored domain (signs the federation feed)"},
    {"federation_key", CONF_STR, NULL, 0, 0, S(federation_key),
     "PEM private key that signs the feed; unset: no feed"},
    {"federation_cert", CONF_STR, NULL, 0, 0, S(federation_cert),
     "PEM certificate of federation_key, then its issuer and root"},
    {"federation_peers", CONF_STR, NULL, 0, 0, S(federation_peers),
     "peers to import: \"URL DOMAIN WEIGHT\" entries separated by commas"},
    {"federation_interval", CONF_DURATION, "60s", 1, DAY, S(federation_interval),
     "how often each peer's feed is polled"},
    {"federation_batch", CONF_INT, "500", 1, 10000, S(federation_batch),
     "score changes in one page of the feed"},
    {"dns_listen", CONF_STR, NULL, 0, 0, S(dns_listen),
     "ADDR:PORT of the DNS zone (UDP); unset: no zone"},
    {"dns_zone", CONF_STR, "rep.invalid", 0, 0, S(dns_zone), "origin of the DNS zone"},
    {"dns_ttl", CONF_DURATION, "300s", 0, DAY, S(dns_ttl), "TTL of the DNS zone's answers"},
    {"log_level", CONF_STR, "info", 0, 0, S(log_level), "error, warning, info or debug"},
    {"syslog", CONF_BOOL, "no", 0, 1, S(syslog), "log to syslog instead of stderr"},
    {NULL, CONF_STR, NULL, 0, 0, 0, NULL},
};

static int is_hex64(const char *s)
{
	if (strlen(s) != 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

static int parse_fraction(const char *name, const char *text, double min, double max, double *out,
                          struct err *e)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || v < min || v > max)
		return err_set(e, ERR_INPUT, "bad_config", "%s = %s: expected a number in %g..%g",
		               name, text, min, max);
	*out = v;
	return 0;
}

/* "URL DOMAIN WEIGHT, URL DOMAIN WEIGHT, ..." */
static int parse_peers(const char *text, struct rep_peer *peers, int *npeers, struct err *e)
{
	char *copy = strdup(text), *save = NULL, *entry;
	int rc = -1;

	*npeers = 0;
	if (copy == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	for (entry = strtok_r(copy, ",", &save); entry != NULL;
	     entry = strtok_r(NULL, ",", &save)) {
		char url[512], domain[256], weight[64], extra[2];
		struct rep_peer *p;

		if (*npeers == REP_MAX_PEERS) {
			err_set(e, ERR_INPUT, "bad_config", "federation_peers: at most %d peers",
			        REP_MAX_PEERS);
			goto out;
		}
		p = &peers[*npeers];
		if (sscanf(entry, " %511s %255s %63s %1s", url, domain, weight, extra) != 3 ||
		    strncmp(url, "https://", 8) != 0) {
			err_set(e, ERR_INPUT, "bad_config",
			        "federation_peers: \"%s\": expected \"https://HOST:PORT DOMAIN "
			        "WEIGHT\"",
			        entry);
			goto out;
		}
		for (char *c = domain; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		if (name_check_domain(domain, e) < 0 ||
		    parse_fraction("federation_peers weight", weight, 0, 10, &p->weight, e) < 0)
			goto out;
		snprintf(p->url, sizeof(p->url), "%s", url);
		snprintf(p->domain, sizeof(p->domain), "%s", domain);
		(*npeers)++;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/* "DOMAIN WEIGHT, DOMAIN WEIGHT, ..." */
static int parse_vetted(const char *text, struct rep_params *p, struct err *e)
{
	char *copy = strdup(text), *save = NULL, *entry;
	int rc = -1;

	if (copy == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	for (entry = strtok_r(copy, ",", &save); entry != NULL;
	     entry = strtok_r(NULL, ",", &save)) {
		char domain[256], weight[64], extra[2];
		struct rep_vetted *v = &p->vetted[p->nvetted];

		if (p->nvetted == REP_MAX_VETTED ||
		    sscanf(entry, " %255s %63s %1s", domain, weight, extra) != 2) {
			err_set(e, ERR_INPUT, "bad_config",
			        "vetted_reporters: \"%s\": expected \"DOMAIN WEIGHT\" (at most %d)",
			        entry, REP_MAX_VETTED);
			goto out;
		}
		for (char *c = domain; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		if (name_check_domain(domain, e) < 0 ||
		    parse_fraction("vetted_reporters weight", weight, 0.01, 100, &v->weight, e) < 0)
			goto out;
		snprintf(v->domain, sizeof(v->domain), "%s", domain);
		p->nvetted++;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/* "trap@example.net, traps.example.net, ..." */
static int parse_traps(const char *text, struct rep_params *p, struct err *e)
{
	char *copy = strdup(text), *save = NULL, *entry;
	int rc = -1;

	if (copy == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	for (entry = strtok_r(copy, ", \t", &save); entry != NULL;
	     entry = strtok_r(NULL, ", \t", &save)) {
		const char *at = strrchr(entry, '@');

		for (char *c = entry; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		if (p->ntraps == REP_MAX_TRAPS || strlen(entry) >= sizeof(p->traps[0]) ||
		    (at != NULL && at == entry) ||
		    name_check_domain(at != NULL ? at + 1 : entry, e) < 0) {
			err_set(e, ERR_INPUT, "bad_config",
			        "spamtraps: \"%s\": expected an address or a domain (at most %d)",
			        entry, REP_MAX_TRAPS);
			goto out;
		}
		snprintf(p->traps[p->ntraps++], sizeof(p->traps[0]), "%s", entry);
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

int rep_settings_check(const struct rep_settings *s, struct rep_params *p, struct rep_peer *peers,
                       int *npeers, struct err *e)
{
	enum log_level lvl;
	struct tls_policy tp;

	memset(p, 0, sizeof(*p));
	if (log_level_parse(s->log_level, &lvl) < 0)
		return err_set(e, ERR_INPUT, "bad_config",
		               "log_level = %s: must be error, warning, info or debug",
		               s->log_level);
	if (!s->allow_plain_http && (s->tls_cert_file == NULL || s->tls_key_file == NULL))
		return err_set(e, ERR_INPUT, "bad_config",
		               "tls_cert_file and tls_key_file are required "
		               "(or allow_plain_http = yes behind a TLS terminator)");
	if (tls_policy_make(&tp, &s->tls, e) < 0)
		return -1;
	if (s->operator_token_hash != NULL && !is_hex64(s->operator_token_hash))
		return err_set(e, ERR_INPUT, "bad_config",
		               "operator_token_hash must be 64 lowercase hex digits "
		               "(see `anchorctl operator token`)");
	if (s->request_timeout > s->conn_timeout)
		return err_set(
		    e, ERR_INPUT, "bad_config",
		    "request_timeout (%llds) must not be longer than conn_timeout (%llds)",
		    s->request_timeout, s->conn_timeout);
	p->half_life = (double)s->half_life;
	p->min_reporters = (int)s->min_reporters;
	p->prefix4 = (int)s->network_prefix4;
	p->prefix6 = (int)s->network_prefix6;
	p->newcomer_ramp = (double)s->newcomer_ramp;
	p->min_networks = (int)s->min_networks;
	p->burst_reporters = (int)s->burst_reporters;
	p->burst_window = (long long)s->burst_window;
	p->signed_evidence = s->signed_evidence;
	if (parse_fraction("list_weight", s->list_weight, 0.01, 1e6, &p->list_weight, e) < 0 ||
	    parse_fraction("trust_weight", s->trust_weight, 0.01, 1e6, &p->trust_weight, e) < 0 ||
	    parse_fraction("reporter_cap", s->reporter_cap, 0.001, 1e6, &p->reporter_cap, e) < 0 ||
	    parse_fraction("network_cap", s->network_cap, 0.001, 1e6, &p->network_cap, e) < 0 ||
	    parse_fraction("standing_min", s->standing_min, 0, 100, &p->standing_min, e) < 0 ||
	    parse_fraction("standing_max", s->standing_max, 0, 100, &p->standing_max, e) < 0 ||
	    parse_fraction("standing_default", s->standing_default, 0, 100, &p->standing_default,
	                   e) < 0 ||
	    parse_fraction("report_rate", s->report_rate, 0, 1e6, &p->report_rate, e) < 0)
		return -1;
	if (p->standing_min > p->standing_default || p->standing_default > p->standing_max)
		return err_set(e, ERR_INPUT, "bad_config",
		               "standing_min <= standing_default <= standing_max does not hold");
	if (p->network_cap < p->reporter_cap)
		log_warn(NULL,
		         "network_cap %g is below reporter_cap %g: one network of several "
		         "reporters then weighs less than one reporter",
		         p->network_cap, p->reporter_cap);
	if ((s->federation_key == NULL) != (s->federation_cert == NULL) ||
	    (s->federation_key != NULL && s->provider_domain == NULL))
		return err_set(e, ERR_INPUT, "bad_config",
		               "federation_key, federation_cert and provider_domain go together");
	if (s->provider_domain != NULL && name_check_domain(s->provider_domain, e) < 0)
		return -1;
	*npeers = 0;
	if (s->federation_peers != NULL && parse_peers(s->federation_peers, peers, npeers, e) < 0)
		return -1;
	if ((s->vetted_reporters != NULL && parse_vetted(s->vetted_reporters, p, e) < 0) ||
	    (s->spamtraps != NULL && parse_traps(s->spamtraps, p, e) < 0))
		return -1;
	return 0;
}
