/*
 * anchor-relay - the paired SMTP relay: signs and routes outbound mail,
 * verifies, scores and sorts inbound mail into trust tiers.  See
 * anchor-relay(8).
 *
 * The process re-executes itself as the signer ("--signer FD SOCKET" before
 * the usual arguments) so that the signer starts from a clean image, never
 * from a fork of a threaded process, and can be restarted the same way.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "control.h"
#include "deliver_cache.h"
#include "core/daemon.h"
#include "dns/discover.h"
#include "core/log.h"
#include "core/signer_proc.h"
#include "core/ttlcache.h"
#include "defer.h"
#include "deliver_conn.h"
#include "held_sweep.h"
#include "partial.h"
#include "relayd.h"
#include "dns/resolve.h"
#include "http/https_client.h"

#define SIGNER_START_WAIT_MS 10000

static void usage(void)
{
	fprintf(stderr, "usage: anchor-relay [-c config] [-n] [-v] [-o name=value]...\n");
}

static int make_dir(const char *path, struct err *e)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return err_set(e, ERR_INTERNAL, "state_dir", "cannot create %s: %s", path,
		               strerror(errno));
	if (chmod(path, 0700) < 0)
		return err_set(e, ERR_INTERNAL, "state_dir", "cannot chmod %s: %s", path,
		               strerror(errno));
	return 0;
}

static int make_state_dirs(const struct relay_settings *s, struct err *e)
{
	static const char *const sub[] = {
	    "",     "/spool",  "/spool/in", "/spool/out",  "/lists",
	    "/pow", "/signer", "/partial",  "/partial/in", "/partial/out"};
	char path[4096];
	size_t i;

	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", s->state_dir, sub[i]);
		if (make_dir(path, e) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ the relay process */

struct relay_main {
	struct relayd d;
	struct signer_proc *sp;
	struct event *sigterm, *sigint, *sigchld, *sighup;
};

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct relay_main *rm = arg;

	(void)what;
	log_info(NULL, "signal %d: stopping", (int)sig);
	rm->d.stopping = 1;
	event_base_loopbreak(rm->d.base);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	log_info(NULL, "SIGHUP: nothing to reload (restart the relay to apply new settings)");
}

/* The signer died: restart it (the client reconnects); mail waits meanwhile. */
static void on_child(evutil_socket_t sig, short what, void *arg)
{
	struct relay_main *rm = arg;
	struct err e = {0};

	(void)sig;
	(void)what;
	if (signer_proc_reap(rm->sp, &e) < 0)
		log_err(NULL, "%s", e.msg);
}

static int write_ports(const struct relay_settings *s, int in, int sub, int ctl, struct err *e)
{
	char tmp[4096];
	FILE *f;

	if (s->port_file == NULL)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->port_file);
	if ((f = fopen(tmp, "w")) == NULL)
		return err_set(e, ERR_INTERNAL, "port_file", "cannot write %s: %s", tmp,
		               strerror(errno));
	fprintf(f, "inbound=%d\nsubmission=%d\ncontrol=%d\n", in, sub, ctl);
	if (fclose(f) != 0 || rename(tmp, s->port_file) < 0)
		return err_set(e, ERR_INTERNAL, "port_file", "cannot write %s: %s", s->port_file,
		               strerror(errno));
	return 0;
}

static struct queue *open_queue(const struct relay_settings *s, const char *sub, struct err *e)
{
	char dir[4096];
	struct queue_opts o = {0};

	snprintf(dir, sizeof(dir), "%s/spool/%s", s->state_dir, sub);
	o.dir = dir;
	o.commit_thread = 1;
	o.backoff_base = (unsigned)s->backoff_base;
	o.backoff_max = (unsigned)s->backoff_max;
	o.lifetime = (unsigned)s->queue_lifetime;
	return queue_open(&o, e);
}

static int open_parts(struct relay_main *rm, struct err *e)
{
	struct relayd *d = &rm->d;
	const struct relay_settings *s = d->s;
	struct discover_config dc = {0};
	char path[4096];

	if ((d->qin = open_queue(s, "in", e)) == NULL ||
	    (d->qout = open_queue(s, "out", e)) == NULL)
		return -1;
	if ((d->signer = relay_signer_client_new(signer_proc_socket(rm->sp), e)) == NULL)
		return -1;
	if ((d->verifier = relay_verifier_new(s, e)) == NULL)
		return -1;
	if ((d->rep = relay_rep_new(s, e)) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/lists", s->state_dir);
	if ((d->lists = relay_lists_open(path, e)) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/pow", s->state_dir);
	if ((d->pow = relay_pow_open(path, (unsigned)s->pow_bits, s->pow_window, e)) == NULL)
		return -1;
	dc.resolver = s->dns_server;
	dc.trust_anchor_file = s->dns_trust_anchor;
	dc.cacert = s->keyserver_cacert;
	dc.timeout_ms = (int)s->lookup_timeout_ms;
	if ((d->discover = discover_new(&dc, e)) == NULL ||
	    (d->resolve = resolve_new(d->discover, e)) == NULL)
		return -1;
	if (relay_hop_parse(s->inbound_next_hop, &d->inbound_hop, e) < 0)
		return -1;
	if ((d->defer = relay_defer_open(s, d->qin, e)) == NULL)
		return -1;
	if (s->anchored_client && s->tls_cert_file != NULL) /* a peer knows us by this key */
		relay_dconn_client_cert(s->tls_cert_file, s->tls_key_file);
	if ((d->tls = relayd_tls_server_ctx(s, &d->tls_hs, e)) == NULL && e->kind != ERR_NONE)
		return -1;
	if ((d->pool = relay_pool_new(d->base, (int)s->workers, e)) == NULL ||
	    (d->dpool = relay_pool_new(d->base, (int)s->workers, e)) == NULL)
		return -1;
	if ((d->rcpt_answers = ttlcache_new(RELAYD_RCPT_ANSWERS, 16, free)) == NULL ||
	    (d->host_addrs = ttlcache_new(RELAYD_HOST_ADDRS, 16, free)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return 0;
}

static void close_parts(struct relay_main *rm)
{
	struct relayd *d = &rm->d;

	relay_control_stop(d->control);
	relayd_listen_stop(d);
	relayd_auth_stop(d);
	relayd_scheduler_stop(d);
	relayd_held_sweep_stop(d);
	relayd_conns_close(d);
	/* The workers finish what they hold (deliveries may wait for a bounce's commit),
	 * then the queues commit what is pending, whose answers go to the pool's done
	 * list; only then do the done() callbacks run and release the connections. */
	relay_pool_stop(d->pool);
	relay_pool_stop(d->dpool);
	relay_dcache_clear(); /* after the workers: none can keep a session any more */
	relay_defer_close(d->defer);
	queue_close(d->qin);
	queue_close(d->qout);
	relay_pool_free(d->pool);
	relay_pool_free(d->dpool);
	resolve_free(d->resolve);
	discover_free(d->discover);
	relay_pow_free(d->pow);
	relay_lists_free(d->lists);
	relay_rep_free(d->rep);
	ttlcache_free(d->rcpt_answers);
	ttlcache_free(d->host_addrs);
	relay_verifier_free(d->verifier);
	relay_signer_client_free(d->signer);
	if (d->tls != NULL)
		SSL_CTX_free(d->tls);
}

static int watch_signals(struct relay_main *rm, struct err *e)
{
	struct event_base *b = rm->d.base;

	rm->sigterm = evsignal_new(b, SIGTERM, on_stop, rm);
	rm->sigint = evsignal_new(b, SIGINT, on_stop, rm);
	rm->sigchld = evsignal_new(b, SIGCHLD, on_child, rm);
	rm->sighup = evsignal_new(b, SIGHUP, on_hup, rm);
	if (rm->sigterm == NULL || rm->sigint == NULL || rm->sigchld == NULL || rm->sighup == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "cannot watch signals");
	event_add(rm->sighup, NULL);
	event_add(rm->sigterm, NULL);
	event_add(rm->sigint, NULL);
	event_add(rm->sigchld, NULL);
	return 0;
}

static int run(struct relay_main *rm, struct err *e)
{
	struct relayd *d = &rm->d;
	int rc = -1;

	if (signer_proc_spawn(rm->sp, e) < 0 || signer_proc_wait_ready(rm->sp, e) < 0)
		goto out;
	if (evthread_use_pthreads() < 0) {
		err_set(e, ERR_INTERNAL, "internal", "libevent has no thread support");
		goto out;
	}
	if ((d->base = event_base_new()) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "cannot create the event loop");
		goto out;
	}
	if (watch_signals(rm, e) < 0 || open_parts(rm, e) < 0 || relayd_auth_start(d, e) < 0 ||
	    relayd_listen(d, e) < 0)
		goto out;
	relayd_partial_start(d); /* the control API's fetches use its queue and verifier */
	if (d->s->control_listen != NULL && *d->s->control_listen != '\0' &&
	    (d->control = relay_control_start(d->s, d->lists, d->rep, d->signer, d->qin, d->qout,
	                                      &d->tls_hs, e)) == NULL)
		goto out;
	if (d->control != NULL)
		relay_control_set_defer(d->control, d->defer);
	if (relayd_scheduler_start(d, e) < 0 || relayd_held_sweep_start(d, e) < 0)
		goto out;
	if (write_ports(d->s, d->port_in, d->port_sub,
	                d->control ? relay_control_port(d->control) : 0, e) < 0)
		goto out;
	log_info(NULL, "anchor-relay %s: inbound port %d, submission port %d%s, next hop %s",
	         d->s->hostname, d->port_in, d->port_sub, d->tls ? ", STARTTLS" : "",
	         d->s->inbound_next_hop);
	event_base_dispatch(d->base);
	log_info(
	    NULL,
	    "stopped: %llu accepted, %llu refused, %llu delivered, %llu deferred, %llu failed, "
	    "%llu bounced",
	    d->st.accepted, d->st.refused, d->st.delivered, d->st.deferred, d->st.failed,
	    d->st.bounced);
	rc = 0;
out:
	d->stopping = 1;
	close_parts(rm);
	if (rm->sigterm != NULL)
		event_free(rm->sigterm);
	if (rm->sigint != NULL)
		event_free(rm->sigint);
	if (rm->sigchld != NULL)
		event_free(rm->sigchld);
	if (rm->sighup != NULL)
		event_free(rm->sighup);
	if (d->base != NULL)
		event_base_free(d->base);
	signer_proc_stop(rm->sp);
	return rc;
}

static int load_settings(int argc, char **argv, struct relay_settings *s, struct daemon_opts *o,
                         struct err *e)
{
	enum log_level lvl = LOG_LVL_INFO;

	if (daemon_opts_parse(argc, argv, "/etc/anchor/relay.conf", o) < 0) {
		usage();
		return -2;
	}
	if (daemon_settings_load(relay_settings_table, s, o, e) < 0 ||
	    relay_settings_check(s, e) < 0)
		return -1;
	log_level_parse(s->log_level, &lvl);
	log_init("anchor-relay", o->verbose ? LOG_LVL_DEBUG : lvl, s->syslog);
	return 0;
}

/* anchor-relay --signer FD SOCKET [-c config] [-o ...]: the signer process. */
static int signer_main(int argc, char **argv)
{
	struct relay_settings s;
	struct daemon_opts o;
	struct err e = {0};
	char *end;
	int fd, rc;

	memset(&s, 0, sizeof(s));
	log_init("anchor-relay/signer", LOG_LVL_INFO, 0);
	fd = (int)strtol(argv[2], &end, 10);
	if (*end != '\0' || fd < 0) {
		log_err(NULL, "--signer: bad descriptor '%s'", argv[2]);
		return 2;
	}
	/* argv + 3 starts at SOCKET, which getopt takes for the program name */
	if ((rc = load_settings(argc - 3, argv + 3, &s, &o, &e)) < 0) {
		if (rc == -1)
			log_err(NULL, "%s", e.msg);
		daemon_opts_free(&o);
		conf_free(relay_settings_table, &s);
		return 1;
	}
	log_init("anchor-relay/signer", o.verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO, s.syslog);
	rc = relay_signer_main(&s, argv[3], fd);
	daemon_opts_free(&o);
	conf_free(relay_settings_table, &s);
	return rc;
}

/* The signer's socket lives in the state directory (state_dir/signer, made 0700);
 * a signer that dies is restarted at once: mail waits for it meanwhile. */
static struct signer_proc *signer_start_prepare(const struct relay_settings *s, int argc,
                                                char **argv, struct err *e)
{
	char socket[4096];
	struct signer_proc_opts o = {
	    .socket = socket,
	    .start_wait_ms = SIGNER_START_WAIT_MS,
	    .stop_grace_ms = 0, /* SIGTERM at once: nothing of ours uses it any more */
	    .restart_pause_s = 0,
	};

	snprintf(socket, sizeof(socket), "%s/signer/socket", s->state_dir);
	return signer_proc_new(&o, argc, argv, e);
}

/*
 * -n fails where the start would: the files the relay itself reads at start are read
 * here the same way (the users table of authenticated submission).  Key files are the
 * signer's and stay unopened.
 */
static int check_start_files(const struct relay_settings *s, struct err *e)
{
	struct relayd_users *u;

	if (s->submission_listen == NULL || *s->submission_listen == '\0' ||
	    strcmp(s->submission_auth, "required") != 0)
		return 0;
	if ((u = relayd_users_load(s->submission_users, e)) == NULL)
		return -1;
	relayd_users_free(u);
	return 0;
}

int main(int argc, char **argv)
{
	struct relay_settings s;
	struct daemon_opts o;
	struct relay_main rm;
	struct err e = {0};
	int rc;

	if (argc >= 4 && strcmp(argv[1], "--signer") == 0)
		return signer_main(argc, argv);
	memset(&s, 0, sizeof(s));
	memset(&rm, 0, sizeof(rm));
	log_init("anchor-relay", LOG_LVL_INFO, 0);
	if ((rc = load_settings(argc, argv, &s, &o, &e)) < 0)
		goto fail;
	if (o.check_only) {
		if ((rc = check_start_files(&s, &e)) < 0)
			goto fail;
		conf_dump(relay_settings_table, &s, stdout);
		rc = 0;
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Before any thread starts: libcurl's global setup is not thread-safe. */
	if (make_state_dirs(&s, &e) < 0 || https_init(&e) < 0)
		goto fail;
	if ((rm.sp = signer_start_prepare(&s, argc, argv, &e)) == NULL)
		goto fail;
	rm.d.s = &s;
	rc = run(&rm, &e);
	signer_proc_free(rm.sp);
	if (rc == 0)
		goto out;
fail:
	if (rc == -2) {
		rc = 2;
		goto out;
	}
	log_err(NULL, "%s", e.msg);
	rc = 1;
out:
	daemon_opts_free(&o);
	conf_free(relay_settings_table, &s);
	return rc;
}
