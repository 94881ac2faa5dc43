/*
 * anchor-reputation - a reputation provider: takes signed abuse reports from receivers,
 * aggregates them resistant to poisoning, answers CSV-style queries over HTTPS (and DNS),
 * and federates with other providers.  See anchor-reputation(8).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/daemon.h"
#include "handlers.h"
#include "http/http_settings.h"
#include "http/https_client.h"
#include "core/log.h"

#define REPORTER_BUCKETS 100000

static void usage(void)
{
	fprintf(stderr, "usage: anchor-reputation [-c config] [-n] [-v] [-o name=value]...\n");
}

static int load_settings(const struct daemon_opts *o, struct rep *rep, struct err *e)
{
	struct rep_settings *s = &rep->cfg;

	if (daemon_settings_load(rep_settings_table, s, o, e) < 0)
		return -1;
	if (o->verbose) {
		free(s->log_level);
		s->log_level = strdup("debug");
	}
	return rep_settings_check(s, &rep->p, rep->peers, &rep->npeers, e);
}

/* Discovery of reporters' and peers' anchors: the configuration first, then ANCHOR_*. */
static int start_discovery(struct rep *rep, struct err *e)
{
	const struct rep_settings *s = &rep->cfg;
	struct discover_config dc = {
	    .resolver = s->resolver,
	    .trust_anchor_file = s->trust_anchor_file,
	    .cacert = s->cacert,
	    .timeout_ms = (int)s->dns_timeout_ms,
	};

	struct certauth_config ac = {.ttl = s->key_status_ttl,
	                             .max_entries = (size_t)s->key_status_cache_size};

	discover_config_from_env(&dc);
	if ((rep->disc = discover_new(&dc, e)) == NULL)
		return -1;
	rep->auth = certauth_new(&ac, rep->disc, e);
	return rep->auth ? 0 : -1;
}

static struct http_server *start_http(struct rep *rep, struct err *e)
{
	struct http_config hc;

	if (http_config_from_settings(&hc, rep_settings_table, &rep->cfg, e) < 0)
		return NULL;
	hc.dispatch = rep_dispatch;
	hc.metrics = rep_metrics;
	hc.health = rep_health;
	hc.tls_policy = &rep->cfg.tls;
	hc.app = rep;
	return http_server_start(&hc, e);
}

static int serve(struct rep *rep, struct err *e)
{
	struct http_server *srv;
	sigset_t set;

	daemon_block_signals(&set);
	if ((rep->pool = db_pool_new(rep->cfg.db_conninfo, (int)rep->cfg.db_pool_size, e)) ==
	        NULL ||
	    (rep->rw = db_rw_new(rep->pool, rep->cfg.db_read_conninfo, (int)rep->cfg.db_pool_size,
	                         rep->cfg.db_read_wait_ms, e)) == NULL ||
	    start_discovery(rep, e) < 0 || rep_federation_load_key(rep, e) < 0)
		return -1;
	if (rep->p.report_rate > 0 &&
	    (rep->report_rl = ratelimit_new(rep->p.report_rate, (double)rep->cfg.report_burst,
	                                    REPORTER_BUCKETS)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	rep->cache =
	    rep_cache_new((size_t)rep->cfg.answer_cache_bytes, (double)rep->cfg.answer_cache_ttl);
	/* The zone before every thread that changes the store (standing, federation, the
	 * HTTPS handlers): they forget what they change in its cache through rep->zone, so
	 * the pointer must be set before they start and stay until they have stopped. */
	if (rep->cfg.dns_listen != NULL && (rep->zone = rep_dnszone_start(rep, e)) == NULL)
		return -1;
	if ((rep->standing = rep_standing_start(rep, e)) == NULL)
		return -1;
	if (rep->npeers > 0 && (rep->fed = rep_federation_start(rep, e)) == NULL)
		return -1;
	if ((srv = start_http(rep, e)) == NULL)
		return -1;
	log_info(NULL, "listening on %s://%s:%d", rep->cfg.allow_plain_http ? "http" : "https",
	         rep->cfg.listen_address, http_server_port(srv));
	if (rep->cfg.port_file != NULL &&
	    daemon_write_port_file(rep->cfg.port_file, http_server_port(srv), e) < 0) {
		http_server_stop(srv);
		return -1;
	}
	daemon_wait_for_stop("anchor-reputation", &set);
	/* The HTTPS server first (its /metrics reads the zone's cache); the zone stops in
	 * rep_release, after the threads that forget in its cache. */
	http_server_stop(srv);
	return 0;
}

static void rep_release(struct rep *rep)
{
	rep_federation_stop(rep->fed);
	rep_standing_stop(rep->standing);
	rep_dnszone_stop(rep->zone); /* after the threads that forget in its cache */
	ratelimit_free(rep->report_rl);
	rep_cache_free(rep->cache);
	certauth_free(rep->auth);
	discover_free(rep->disc);
	db_rw_free(rep->rw);
	db_pool_free(rep->pool);
	EVP_PKEY_free(rep->fed_key);
	for (int i = 0; i < rep->fed_nchain; i++)
		X509_free(rep->fed_chain[i]);
	conf_free(rep_settings_table, &rep->cfg);
}

int main(int argc, char **argv)
{
	struct daemon_opts o = {0};
	static struct rep rep;
	struct err e = {0};
	enum log_level lvl = LOG_LVL_INFO;
	int rc = 1;

	if (daemon_opts_parse(argc, argv, "/etc/anchor/reputation.conf", &o) < 0) {
		usage();
		daemon_opts_free(&o);
		return 2;
	}
	log_init("anchor-reputation", LOG_LVL_INFO, 0);
	if (load_settings(&o, &rep, &e) < 0) {
		fprintf(stderr, "anchor-reputation: %s\n", e.msg);
		goto out;
	}
	if (o.check_only) {
		conf_dump(rep_settings_table, &rep.cfg, stdout);
		rc = 0;
		goto out;
	}
	log_level_parse(rep.cfg.log_level, &lvl);
	log_init("anchor-reputation", lvl, rep.cfg.syslog);
	/* Before any thread starts: libcurl's global setup is not thread-safe. */
	if (https_init(&e) < 0 ||
	    (rep.cfg.migrate_on_start &&
	     daemon_migrate(rep.cfg.db_conninfo, rep.cfg.sql_dir, &e) < 0) ||
	    serve(&rep, &e) < 0) {
		log_err(NULL, "%s", e.msg);
		goto out;
	}
	rc = 0;
out:
	rep_release(&rep);
	daemon_opts_free(&o);
	return rc;
}
