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
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "cache.h"
#include "core/daemon.h"
#include "core/db.h"
#include "http/http.h"
#include "core/log.h"
#include "ks.h"
#include "ks_signer.h"

#define SIGNER_START_WAIT_MS 15000
#define SIGNER_RESTART_PAUSE_S 1 /* between restarts of a signer that dies at once */

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

struct signer_proc {
	pid_t pid;
	int fd; /* our end of the pipe: the signer exits when it closes */
	time_t started;
	char socket[108];
	char tmpdir[64]; /* made for the socket when signer_socket is unset; or "" */
	char self[4096];
	char **argv; /* the signer's: [0] ours, "--signer", FD, SOCKET, our arguments */
	char fdbuf[16];
};

static int signer_prepare(struct signer_proc *sp, const struct ks_settings *s, int argc,
                          char **argv, struct err *e)
{
	ssize_t n = readlink("/proc/self/exe", sp->self, sizeof(sp->self) - 1);

	if (n <= 0)
		snprintf(sp->self, sizeof(sp->self), "%s", argv[0]);
	if (s->signer_socket != NULL && *s->signer_socket) {
		if (strlen(s->signer_socket) >= sizeof(sp->socket) - 12)
			return err_set(e, ERR_INPUT, "bad_config", "signer_socket %s is too long",
			               s->signer_socket);
		snprintf(sp->socket, sizeof(sp->socket), "%s", s->signer_socket);
	} else {
		snprintf(sp->tmpdir, sizeof(sp->tmpdir), "/tmp/anchor-keyserver.XXXXXX");
		if (mkdtemp(sp->tmpdir) == NULL)
			return err_set(e, ERR_INTERNAL, "signer", "mkdtemp: %s", strerror(errno));
		snprintf(sp->socket, sizeof(sp->socket), "%s/signer.sock", sp->tmpdir);
	}
	/* Built before any fork: the child only execs. */
	if ((sp->argv = calloc((size_t)argc + 4, sizeof(char *))) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	sp->argv[0] = argv[0];
	sp->argv[1] = "--signer";
	sp->argv[2] = sp->fdbuf;
	sp->argv[3] = sp->socket;
	for (int i = 1; i < argc; i++)
		sp->argv[i + 3] = argv[i];
	return 0;
}

static void signer_cleanup(struct signer_proc *sp)
{
	unlink(sp->socket);
	if (sp->tmpdir[0])
		rmdir(sp->tmpdir);
	free(sp->argv);
}

/* fork + exec from a possibly threaded process: the child calls only async-signal-safe
 * functions (its signal mask is cleared: ours blocks SIGTERM for sigwait). */
static int signer_spawn(struct signer_proc *sp, struct err *e)
{
	sigset_t none;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(e, ERR_INTERNAL, "signer", "pipe: %s", strerror(errno));
	snprintf(sp->fdbuf, sizeof(sp->fdbuf), "%d", p[0]);
	sigemptyset(&none);
	unlink(sp->socket);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return err_set(e, ERR_INTERNAL, "signer", "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (fcntl(p[0], F_SETFD, 0) < 0) /* the signer keeps its end */
			_exit(127);
		execv(sp->self, sp->argv);
		_exit(127);
	}
	close(p[0]);
	sp->pid = pid;
	sp->fd = p[1];
	sp->started = time(NULL);
	return 0;
}

/* Wait until the signer's socket exists (it is created once the signer is ready). */
static int signer_wait_ready(struct signer_proc *sp, struct err *e)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	int waited, status;

	for (waited = 0; waited < SIGNER_START_WAIT_MS; waited += 20) {
		if (access(sp->socket, F_OK) == 0)
			return 0;
		if (waitpid(sp->pid, &status, WNOHANG) == sp->pid) {
			sp->pid = -1;
			return err_set(
			    e, ERR_INPUT, "signer",
			    "the signer process exited at start (status %d): see its log "
			    "line above",
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		}
		nanosleep(&ts, NULL);
	}
	return err_set(e, ERR_INTERNAL, "signer", "the signer did not start within %d ms",
	               SIGNER_START_WAIT_MS);
}

/* Close the pipe and let the signer finish what it does and exit by itself (a few
 * seconds at most), then make sure it is gone. */
static void signer_stop(struct signer_proc *sp)
{
	struct timespec ts = {0, 20 * 1000 * 1000};

	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	if (sp->pid <= 0)
		return;
	for (int waited = 0; waited < 5000; waited += 20) {
		if (waitpid(sp->pid, NULL, WNOHANG) == sp->pid) {
			sp->pid = -1;
			return;
		}
		nanosleep(&ts, NULL);
	}
	kill(sp->pid, SIGTERM);
	waitpid(sp->pid, NULL, 0);
	sp->pid = -1;
}

/* SIGCHLD: when the signer died, start another (the client reconnects). */
static void signer_reap(struct signer_proc *sp)
{
	struct err e = {0};
	int status;

	if (sp->pid <= 0 || waitpid(sp->pid, &status, WNOHANG) != sp->pid)
		return;
	log_err(NULL, "the signer process exited (%s %d): restarting it",
	        WIFSIGNALED(status) ? "signal" : "status",
	        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	close(sp->fd);
	sp->fd = -1;
	sp->pid = -1;
	if (time(NULL) - sp->started < SIGNER_RESTART_PAUSE_S)
		sleep(
		    SIGNER_RESTART_PAUSE_S); /* one that dies at start is not restarted in a loop */
	if (signer_spawn(sp, &e) < 0)
		log_err(NULL, "%s", e.msg);
}

/* ------------------------------------------------------------------ the HTTPS process */

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
	    .tls_ticket_rotation = (long)s->tls_ticket_rotation,
	    .rate_per_sec = (double)s->rate_limit,
	    .rate_burst = (double)s->rate_burst,
	    .dispatch = ks_dispatch,
	    .metrics = ks_metrics,
	    .health = ks_health,
	    .app = ks,
	};

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
	if (signer_spawn(sp, e) < 0 || signer_wait_ready(sp, e) < 0)
		return -1;
	if ((ks->signer = ks_signer_client_new(sp->socket, e)) == NULL)
		return -1;
	if ((ks->pool = db_pool_new(ks->cfg.db_conninfo, (int)ks->cfg.db_pool_size, e)) == NULL)
		return -1;
	if ((ks->cache = ks_cache_new((size_t)ks->cfg.answer_cache_bytes,
	                              ks->cfg.stale_if_error)) == NULL ||
	    (ks->heads = ks_group_new()) == NULL)
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
	struct signer_proc sp = {.pid = -1, .fd = -1};
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
	/* Before any thread starts: curl_global_init is not thread-safe. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((ks.cfg.migrate_on_start &&
	     daemon_migrate(ks.cfg.db_conninfo, ks.cfg.sql_dir, &e) < 0) ||
	    signer_prepare(&sp, &ks.cfg, argc, argv, &e) < 0 || serve(&ks, &sp, &e) < 0) {
		log_err(NULL, "%s", e.msg);
		goto out;
	}
	rc = 0;
out:
	ks_webhooks_stop(ks.webhooks);
	ks_cache_free(ks.cache);
	ks_group_free(ks.heads);
	db_pool_free(ks.pool);
	frame_client_free(ks.signer);
	signer_stop(&sp);
	signer_cleanup(&sp);
	conf_free(ks_settings_table, &ks.cfg);
	daemon_opts_free(&o);
	return rc;
}
