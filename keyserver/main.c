/*
 * anchor-keyserver - a domain key server: publishes domains' root and issuer
 * certificates, enrolls users' keys, issues server certificates, answers
 * exact-match lookups over HTTPS.  See anchor-keyserver(8).
 *
 * Two processes (ks.h).  This one serves HTTPS and never reads the KEK; it
 * executes its own binary again as the signer ("--signer FD SOCKET" before
 * the usual arguments) so that the signer starts from a clean image, never
 * from a fork of a threaded process, and restarts it the same way whenever
 * it dies.  Meanwhile requests that need a signature get 503.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "acme.h"
#include "cache.h"
#include "core/daemon.h"
#include "core/db.h"
#include "http/http.h"
#include "http/http_settings.h"
#include "http/https_client.h"
#include "core/log.h"
#include "core/signer_proc.h"
#include "ks.h"
#include "ks_signer.h"
#include "log_edge.h"

#define SIGNER_START_WAIT_MS 15000
#define SIGNER_STOP_GRACE_MS 5000 /* to finish what it does once the pipe closes */
#define SIGNER_RESTART_PAUSE_S 1  /* between restarts of a signer that dies at once */

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

/* ------------------------------------------------------------------ the signer process */

/* Where the signer's socket lives: signer_socket, or a directory of our own in /tmp
 * (tmpdir, removed at exit). */
struct ks_signer_place {
	char socket[108];
	char tmpdir[64]; /* made for the socket when signer_socket is unset; or "" */
};

static struct signer_proc *signer_prepare(struct ks_signer_place *pl, const struct ks_settings *s,
                                          int argc, char **argv, struct err *e)
{
	struct signer_proc_opts o = {
	    .socket = pl->socket,
	    .start_wait_ms = SIGNER_START_WAIT_MS,
	    .stop_grace_ms = SIGNER_STOP_GRACE_MS,
	    .restart_pause_s = SIGNER_RESTART_PAUSE_S,
	};

	if (s->signer_socket != NULL && *s->signer_socket) {
		/* room left for what the signer appends (sun_path is 108 bytes) */
		if (strlen(s->signer_socket) >= sizeof(pl->socket) - 12) {
			err_set(e, ERR_INPUT, "bad_config", "signer_socket %s is too long",
			        s->signer_socket);
			return NULL;
		}
		snprintf(pl->socket, sizeof(pl->socket), "%s", s->signer_socket);
	} else {
		snprintf(pl->tmpdir, sizeof(pl->tmpdir), "/tmp/anchor-keyserver.XXXXXX");
		if (mkdtemp(pl->tmpdir) == NULL) {
			pl->tmpdir[0] = '\0';
			err_set(e, ERR_INTERNAL, "signer", "mkdtemp: %s", strerror(errno));
			return NULL;
		}
		snprintf(pl->socket, sizeof(pl->socket), "%s/signer.sock", pl->tmpdir);
	}
	return signer_proc_new(&o, argc, argv, e);
}

static void signer_place_cleanup(const struct ks_signer_place *pl)
{
	if (pl->socket[0])
		unlink(pl->socket);
	if (pl->tmpdir[0])
		rmdir(pl->tmpdir);
}

/* SIGCHLD: when the signer died, start another (the client reconnects). */
static void signer_reap(struct signer_proc *sp)
{
	struct err e = {0};

	if (signer_proc_reap(sp, &e) < 0)
		log_err(NULL, "%s", e.msg);
}

/* ------------------------------------------------------------------ the HTTPS process */

static struct http_server *start_http(struct ks *ks, struct err *e)
{
	struct http_config hc;

	if (http_config_from_settings(&hc, ks_settings_table, &ks->cfg, e) < 0)
		return NULL;
	hc.dispatch = ks_dispatch;
	hc.metrics = ks_metrics;
	hc.health = ks_health;
	hc.tls_policy = &ks->cfg.tls;
	hc.app = ks;
	return http_server_start(&hc, e);
}

/* Until SIGTERM or SIGINT: restart the signer whenever it dies. */
static void wait_for_stop(struct signer_proc *sp, sigset_t *set)
{
	int sig = 0;

	while (sigwait(set, &sig) == 0) {
		if (sig == SIGCHLD)
			signer_reap(sp);
		else if (sig == SIGHUP)
			log_info(NULL, "SIGHUP ignored: restart to reload the configuration");
		else
			break;
	}
	log_info(NULL, "signal %d: stopping", sig);
}

static int serve(struct ks *ks, struct signer_proc *sp, struct err *e)
{
	struct http_server *srv;
	sigset_t set;

	daemon_block_signals(&set);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (signer_proc_spawn(sp, e) < 0 || signer_proc_wait_ready(sp, e) < 0)
		return -1;
	if ((ks->signer = ks_signer_client_new(signer_proc_socket(sp), e)) == NULL)
		return -1;
	if ((ks->pool = db_pool_new(ks->cfg.db_conninfo, (int)ks->cfg.db_pool_size, e)) == NULL ||
	    (ks->rw = db_rw_new(ks->pool, ks->cfg.db_read_conninfo, (int)ks->cfg.db_pool_size,
	                        ks->cfg.db_read_wait_ms, e)) == NULL)
		return -1;
	if ((ks->cache = ks_cache_new((size_t)ks->cfg.answer_cache_bytes,
	                              ks->cfg.stale_if_error)) == NULL ||
	    (ks->heads = ks_group_new()) == NULL || (ks->changes = ks_group_new()) == NULL ||
	    (ks->edge = ks_log_edge_new()) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (ks_cache_listen(ks->cache, ks->cfg.db_conninfo, ks->rw, e) < 0)
		return -1;
	if ((ks->webhooks = ks_webhooks_start(ks, e)) == NULL)
		return -1;
	if (ks->cfg.acme && (ks->acme = acme_validators_start(ks, e)) == NULL)
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
	wait_for_stop(sp, &set);
	http_server_stop(srv);
	return 0;
}

/* anchor-keyserver --signer FD SOCKET [-c config] [-o ...]: the signer process. */
static int signer_main(int argc, char **argv)
{
	struct ks_settings s = {0};
	struct daemon_opts o = {0};
	struct err e = {0};
	enum log_level lvl = LOG_LVL_INFO;
	char *end;
	long fd;
	int rc = 1;

	log_init("anchor-keyserver/signer", LOG_LVL_INFO, 0);
	fd = strtol(argv[2], &end, 10);
	if (*end != '\0' || fd < 0 || fd > 65535) {
		log_err(NULL, "--signer: bad descriptor '%s'", argv[2]);
		return 2;
	}
	/* argv + 3 starts at SOCKET, which getopt takes for the program name */
	if (daemon_opts_parse(argc - 3, argv + 3, "/etc/anchor/keyserver.conf", &o) < 0) {
		usage();
		daemon_opts_free(&o);
		return 2;
	}
	if (load_settings(&o, &s, &e) < 0) {
		log_err(NULL, "%s", e.msg);
		goto out;
	}
	log_level_parse(s.log_level, &lvl);
	log_init("anchor-keyserver/signer", lvl, s.syslog);
	rc = ks_signer_main(&s, argv[3], (int)fd);
out:
	conf_free(ks_settings_table, &s);
	daemon_opts_free(&o);
	return rc;
}

int main(int argc, char **argv)
{
	struct daemon_opts o = {0};
	struct ks ks = {0};
	struct ks_signer_place place = {0};
	struct signer_proc *sp = NULL;
	struct err e = {0};
	enum log_level lvl = LOG_LVL_INFO;
	int rc = 1;

	if (argc >= 4 && strcmp(argv[1], "--signer") == 0)
		return signer_main(argc, argv);
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
	if (ks_preflight(&ks.cfg, &e) < 0) {
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
	/* Before any thread starts: libcurl's global setup is not thread-safe. */
	if (https_init(&e) < 0 ||
	    (ks.cfg.migrate_on_start &&
	     daemon_migrate(ks.cfg.db_conninfo, ks.cfg.sql_dir, &e) < 0) ||
	    (sp = signer_prepare(&place, &ks.cfg, argc, argv, &e)) == NULL ||
	    serve(&ks, sp, &e) < 0) {
		log_err(NULL, "%s", e.msg);
		goto out;
	}
	rc = 0;
out:
	ks_webhooks_stop(ks.webhooks);
	acme_validators_stop(ks.acme);
	ks_cache_free(ks.cache);
	ks_group_free(ks.heads);
	ks_group_free(ks.changes);
	ks_log_edge_free(ks.edge);
	db_rw_free(ks.rw);
	db_pool_free(ks.pool);
	frame_client_free(ks.signer);
	signer_proc_free(sp);
	signer_place_cleanup(&place);
	conf_free(ks_settings_table, &ks.cfg);
	daemon_opts_free(&o);
	return rc;
}
