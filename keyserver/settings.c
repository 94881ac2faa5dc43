/* settings.c - the one table of anchor-keyserver parameters: name, type, default, bounds. */
#include "settings.h"

#include <stddef.h>
#include <string.h>

#include "core/log.h"

#define S(field) offsetof(struct ks_settings, field)
#define KB 1024LL

const struct conf_param ks_settings_table[] = {
    {"listen_address", CONF_STR, "127.0.0.1", 0, 0, S(listen_address),
     "address to listen on (IPv4 or IPv6; \"::\" for all)"},
    {"listen_port", CONF_INT, "8443", 0, 65535, S(listen_port), "TCP port; 0 picks a free one"},
    {"port_file", CONF_STR, NULL, 0, 0, S(port_file), "write the bound port here (for tests)"},
    {"tls_cert_file", CONF_STR, NULL, 0, 0, S(tls_cert_file), "PEM certificate chain for HTTPS"},
    {"tls_key_file", CONF_STR, NULL, 0, 0, S(tls_key_file), "PEM private key for HTTPS"},
    {"allow_plain_http", CONF_BOOL, "no", 0, 1, S(allow_plain_http),
     "serve plain HTTP (only behind a TLS terminator)"},
    {"db_conninfo", CONF_STR, "dbname=anchor", 0, 0, S(db_conninfo), "libpq connection string"},
    {"db_pool_size", CONF_INT, "8", 1, 256, S(db_pool_size),
     "database connections (to the primary, and as many again to the replica if any)"},
    {"db_read_conninfo", CONF_STR, NULL, 0, 0, S(db_read_conninfo),
     "libpq connection string for lookups, e.g. a streaming replica "
     "(target_session_attrs=prefer-standby); unset: db_conninfo"},
    {"db_read_wait_ms", CONF_INT, "200", 0, 10000, S(db_read_wait_ms),
     "how long a lookup waits for the replica to replay this node's last write (or the "
     "last change notified) before the primary answers it instead"},
    {"sql_dir", CONF_STR, "/usr/local/share/anchor/sql", 0, 0, S(sql_dir),
     "directory of schema migrations"},
    {"migrate_on_start", CONF_BOOL, "yes", 0, 1, S(migrate_on_start),
     "apply pending migrations at start"},
    {"issuer_kek_file", CONF_STR, "/var/lib/anchor/issuer.kek", 0, 0, S(issuer_kek_file),
     "32-byte key that seals the domains' issuer keys in the database (0600; made when "
     "missing; the same file on every node)"},
    {"operator_token_hash", CONF_STR, NULL, 0, 0, S(operator_token_hash),
     "hex SHA-256 of the operator token; unset disables the operator API"},
    {"max_body", CONF_SIZE, "64k", 1 * KB, 16 * KB *KB, S(max_body), "largest request body"},
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
    {"cache_max_age", CONF_DURATION, "300s", 0, 86400, S(cache_max_age),
     "Cache-Control max-age of certificate objects"},
    {"answer_cache_bytes", CONF_SIZE, "64m", 64 * KB, 16 * KB *KB *KB, S(answer_cache_bytes),
     "memory for kept lookup answers (bodies and bookkeeping); the oldest go first"},
    {"stale_if_error", CONF_DURATION, "300s", 0, 3600, S(stale_if_error),
     "serve a kept lookup answer at most this long past its max-age, and at most this long "
     "after the database was lost, while the database cannot be reached; 0 disables"},
    {"cert_days", CONF_INT, "365", 1, 825, S(cert_days), "validity of issued certificates"},
    /* Renewal by the current key (PROTOCOL.md 5.3): when, how often, for how long. */
    {"renew_window", CONF_DURATION, "0", 0, 825 * 86400LL, S(renew_window),
     "how long before notAfter a holder may renew with its current key; 0: a third of "
     "the certificate's lifetime"},
    {"renew_min_interval", CONF_DURATION, "1h", 0, 365 * 86400LL, S(renew_min_interval),
     "how long a certificate must have been current before it may be renewed"},
    {"renew_max_lifetime", CONF_DURATION, "0", 0, 825 * 86400LL, S(renew_max_lifetime),
     "longest validity of a renewed certificate (whole days, at least 1d); 0: cert_days"},
    /* ACME (PROTOCOL.md 5.4): certificates for the hosts of a domain, by certbot & co. */
    {"acme", CONF_BOOL, "no", 0, 1, S(acme),
     "serve ACME (RFC 8555) at /acme/<domain>/directory for the hosts of every domain"},
    {"acme_http01_port", CONF_INT, "80", 1, 65535, S(acme_http01_port),
     "the port http-01 validation fetches http://<host>:<port>/.well-known/acme-challenge/ "
     "from (80 as RFC 8555 says; another only for tests)"},
    {"acme_resolver", CONF_STR, NULL, 0, 0, S(acme_resolver),
     "DNS server (ADDR[:PORT]) that resolves hosts for http-01 and reads the TXT records "
     "of dns-01; unset: the first nameserver of /etc/resolv.conf"},
    {"acme_orders_per_hour", CONF_INT, "50", 0, 1000000, S(acme_orders_per_hour),
     "new ACME orders one account may place per hour (rateLimited beyond); 0: no limit"},
    {"acme_domain_orders_per_hour", CONF_INT, "1000", 0, 10000000, S(acme_domain_orders_per_hour),
     "new ACME orders per domain per hour, all accounts together; 0: no limit"},
    {"acme_validation_workers", CONF_INT, "4", 1, 64, S(acme_validation_workers),
     "threads of this node that validate ACME challenges, apart from the HTTP workers"},
    {"acme_validation_timeout", CONF_DURATION, "10s", 1, 60, S(acme_validation_timeout),
     "longest an http-01 fetch may take (connecting: half of it); each DNS query of a "
     "validation gets at most 3s of it"},
    {"acme_validations_per_account", CONF_INT, "2", 1, 1000, S(acme_validations_per_account),
     "challenges one ACME account may have being validated at once (rateLimited beyond)"},
    {"acme_validation_queue", CONF_INT, "100", 1, 1000000, S(acme_validation_queue),
     "challenges being validated at once by all accounts of all nodes (rateLimited beyond)"},
    /* Direct endpoints (PROTOCOL.md 6.5): a user's own daemon, for a short while. */
    {"direct_max_lifetime", CONF_DURATION, "24h", 60, 7 * 86400LL, S(direct_max_lifetime),
     "longest a user's direct endpoint may be registered for"},
    {"direct_allow_private", CONF_BOOL, "no", 0, 1, S(direct_allow_private),
     "accept direct endpoints on loopback and private addresses (tests only)"},
    {"webhook_allow_http", CONF_BOOL, "no", 0, 1, S(webhook_allow_http),
     "allow http:// webhook URLs (tests on loopback only)"},
    {"webhook_retry_base", CONF_DURATION, "10s", 1, 3600, S(webhook_retry_base),
     "first retry delay of a failed webhook delivery; doubles each time"},
    {"webhook_max_attempts", CONF_INT, "12", 1, 100, S(webhook_max_attempts),
     "delivery attempts before a webhook call is given up"},
    {"log_level", CONF_STR, "info", 0, 0, S(log_level), "error, warning, info or debug"},
    {"syslog", CONF_BOOL, "no", 0, 1, S(syslog), "log to syslog instead of stderr"},
    /* The signer process: the only holder of the KEK and the issuer keys. */
    {"signer_socket", CONF_STR, NULL, 0, 0, S(signer_socket),
     "Unix socket between the HTTPS process and its signer (made 0600 in a 0700 "
     "directory); unset: a fresh private directory under /tmp"},
    {"signer_db_conninfo", CONF_STR, NULL, 0, 0, S(signer_db_conninfo),
     "libpq connection string of the signer (a role of its own); unset: db_conninfo"},
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

int ks_settings_check(const struct ks_settings *s, struct err *e)
{
	enum log_level lvl;
	struct tls_policy tp;

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
	if (s->renew_max_lifetime != 0 && s->renew_max_lifetime < 86400)
		return err_set(e, ERR_INPUT, "bad_config",
		               "renew_max_lifetime must be 0 (cert_days) or at least 1d");
	if (s->request_timeout > s->conn_timeout)
		return err_set(
		    e, ERR_INPUT, "bad_config",
		    "request_timeout (%llds) must not be longer than conn_timeout (%llds)",
		    s->request_timeout, s->conn_timeout);
	return 0;
}
