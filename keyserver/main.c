/*
 * anchor-keyserver - a domain key server: publishes domains' root and issuer
 * certificates, enrolls users' keys, issues server certificates, answers
 * exact-match lookups over HTTPS.  See anchor-keyserver(8).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "cache.h"
#include "daemon.h"
#include "keywrap.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "ks.h"

#define CACHE_MAX_ENTRIES 200000

static void usage(void)
{
	fprintf(stderr, "usage: anchor-keyserver [-c config] [-n] [-v] [-o name=value]...\n");
}

static int load_settings(const struct daemon_opts *o, struct ks_settings *s, struct err *e)
{
	if (daemon_settings_load(ks_settings_table, s, o, e) < 0)
		return -1;
	if (o->verbose) {
		free(s->log_level);
		s->log_level = strdup("debug");
	}
	return ks_settings_check(s, e);
}

static int load_kek(struct ks *ks, struct err *e)
{
	int created = 0;

	if (keywrap_kek_load(ks->cfg.issuer_kek_file, 1, ks->kek, &created, e) < 0)
		return -1;
	if (created)
		log_warn(NULL, "made a new issuer_kek_file %s: every key-server node sharing this "
			 "database needs a copy of it, and it is needed to read the issuer keys",
			 ks->cfg.issuer_kek_file);
	return 0;
}

static struct http_server *start_http(struct ks *ks, struct err *e)
{
	const struct ks_settings *s = &ks->cfg;
	struct http_config hc = {
		.listen_addr = s->listen_address,
		.port = (int)s->listen_port,
		.tls_cert_file = s->tls_cert_file,
		.tls_key_file = s->tls_key_file,
		.allow_plain_http = s->allow_plain_http,
		.max_body = (size_t)s->max_body,
		.threads = (int)s->http_threads,
		.max_connections = (int)s->max_connections,
		.max_connections_per_ip = (int)s->max_connections_per_ip,
		.conn_timeout = (int)s->conn_timeout,
		.request_timeout = (int)s->request_timeout,
		.rate_per_sec = (double)s->rate_limit,
		.rate_burst = (double)s->rate_burst,
		.dispatch = ks_dispatch,
		.metrics = ks_metrics,
		.health = ks_health,
		.app = ks,
	};

	return http_server_start(&hc, e);
}

static int serve(struct ks *ks, struct err *e)
{
	struct http_server *srv;
	sigset_t set;

	daemon_block_signals(&set);
	if ((ks->pool = db_pool_new(ks->cfg.db_conninfo, (int)ks->cfg.db_pool_size, e)) == NULL)
		return -1;
	if ((ks->cache = ks_cache_new(CACHE_MAX_ENTRIES)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ks_cache_listen(ks->cache, ks->cfg.db_conninfo, e) < 0)
		return -1;
	if ((ks->webhooks = ks_webhooks_start(ks, e)) == NULL)
		return -1;
	if ((srv = start_http(ks, e)) == NULL)
		return -1;
	log_info(NULL, "listening on %s://%s:%d", ks->cfg.allow_plain_http ? "http" : "https",
		 ks->cfg.listen_address, http_server_port(srv));
	if (ks->cfg.port_file != NULL &&
	    daemon_write_port_file(ks->cfg.port_file, http_server_port(srv), e) < 0) {
		http_server_stop(srv);
		return -1;
	}
	daemon_wait_for_stop("anchor-keyserver", &set);
	http_server_stop(srv);
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon_opts o = {0};
	struct ks ks = {0};
	struct err e = {0};
	enum log_level lvl = LOG_LVL_INFO;
	int rc = 1;

	if (daemon_opts_parse(argc, argv, "/etc/anchor/keyserver.conf", &o) < 0) {
		usage();
		daemon_opts_free(&o);
		return 2;
	}
	log_init("anchor-keyserver", LOG_LVL_INFO, 0);
	if (load_settings(&o, &ks.cfg, &e) < 0) {
		fprintf(stderr, "anchor-keyserver: %s\n", e.msg);
		goto out;
	}
	if (o.check_only) {
		conf_dump(ks_settings_table, &ks.cfg, stdout);
		rc = 0;
		goto out;
	}
	log_level_parse(ks.cfg.log_level, &lvl);
	log_init("anchor-keyserver", lvl, ks.cfg.syslog);
	/* Before any thread starts: curl_global_init is not thread-safe. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (load_kek(&ks, &e) < 0 ||
	    (ks.cfg.migrate_on_start &&
	     daemon_migrate(ks.cfg.db_conninfo, ks.cfg.sql_dir, &e) < 0) ||
	    serve(&ks, &e) < 0) {
		log_err(NULL, "%s", e.msg);
		goto out;
	}
	rc = 0;
out:
	ks_webhooks_stop(ks.webhooks);
	ks_cache_free(ks.cache);
	db_pool_free(ks.pool);
	OPENSSL_cleanse(ks.kek, sizeof(ks.kek));
	conf_free(ks_settings_table, &ks.cfg);
	daemon_opts_free(&o);
	return rc;
}
