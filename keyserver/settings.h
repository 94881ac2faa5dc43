/* settings.h - anchor-keyserver's configuration, one typed table (settings.c). */
#ifndef KS_SETTINGS_H
#define KS_SETTINGS_H

#include "core/conf.h"
#include "pki/tls_policy.h"

struct ks_settings {
	char *listen_address;
	long long listen_port;
	char *port_file;
	char *tls_cert_file;
	char *tls_key_file;
	int allow_plain_http;
	char *db_conninfo;
	long long db_pool_size;
	char *db_read_conninfo;
	long long db_read_wait_ms;
	char *sql_dir;
	int migrate_on_start;
	char *issuer_kek_file;
	char *operator_token_hash;
	long long max_body;
	long long http_threads;
	long long max_connections;
	long long max_connections_per_ip;
	long long conn_timeout;
	long long request_timeout;
	long long tls_ticket_rotation;
	struct tls_policy_conf tls; /* tls_profile, tls_ciphers, tls_groups */
	long long rate_limit;
	long long rate_burst;
	long long cache_max_age;
	long long answer_cache_bytes;
	long long stale_if_error;
	long long cert_days;
	/* renewal by the current key (renew_policy.h) */
	long long renew_window;
	long long renew_min_interval;
	long long renew_max_lifetime;
	/* ACME (acme.h) */
	int acme;
	long long acme_http01_port;
	char *acme_resolver;
	long long acme_orders_per_hour;
	long long acme_domain_orders_per_hour;
	long long acme_validation_workers;
	long long acme_validation_timeout;
	long long acme_validations_per_account;
	long long acme_validation_queue;
	/* direct endpoints (direct_json.h) */
	long long direct_max_lifetime;
	int direct_allow_private;
	int webhook_allow_http;
	long long webhook_retry_base;
	long long webhook_max_attempts;
	char *log_level;
	int syslog;
	/* the signer process (signer.c) */
	char *signer_socket;
	char *signer_db_conninfo;
};

extern const struct conf_param ks_settings_table[];

/* Cross-parameter checks that one table row cannot express. */
int ks_settings_check(const struct ks_settings *s, struct err *e);
/* preflight.c: what a start needs from the system (files, directories, the database),
 * each error naming its setting; run by -n and before a start. */
int ks_preflight(const struct ks_settings *s, struct err *e);

#endif
