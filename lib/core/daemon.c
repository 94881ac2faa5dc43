/* daemon.c - the plumbing every daemon shares; see daemon.h. */
#include "core/daemon.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/db.h"
#include "core/log.h"

int daemon_opts_parse(int argc, char **argv, const char *default_config, struct daemon_opts *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	o->config = default_config;
	o->overrides = calloc((size_t)argc, sizeof(char *));
	if (o->overrides == NULL)
		return -1;
	optind = 1;
	while ((ch = getopt(argc, argv, "c:no:vh")) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'n':
			o->check_only = 1;
			break;
		case 'o':
			o->overrides[o->noverrides++] = optarg;
			break;
		case 'v':
			o->verbose = 1;
			break;
		default:
			return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

void daemon_opts_free(struct daemon_opts *o)
{
	if (o == NULL)
		return;
	free(o->overrides);
	o->overrides = NULL;
}

int daemon_settings_load(const struct conf_param *table, void *settings,
                         const struct daemon_opts *o, struct err *e)
{
	if (conf_load(table, settings, o->config, e) < 0)
		return -1;
	for (int i = 0; i < o->noverrides; i++) {
		const char *eq = strchr(o->overrides[i], '=');
		char name[128];

		if (eq == NULL || (size_t)(eq - o->overrides[i]) >= sizeof(name))
			return err_set(e, ERR_INPUT, "bad_config", "-o %s: expected name=value",
			               o->overrides[i]);
		memcpy(name, o->overrides[i], (size_t)(eq - o->overrides[i]));
		name[eq - o->overrides[i]] = '\0';
		if (conf_set(table, settings, name, eq + 1, e) < 0)
			return -1;
	}
	return 0;
}

int daemon_migrate(const char *conninfo, const char *sql_dir, struct err *e)
{
	struct db *db = db_connect(conninfo, e);
	int n;

	if (db == NULL)
		return -1;
	n = db_migrate(db, sql_dir, e);
	db_close(db);
	if (n < 0)
		return -1;
	if (n > 0)
		log_info(NULL, "applied %d migration(s)", n);
	return 0;
}

int daemon_write_port_file(const char *path, int port, struct err *e)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return err_set(e, ERR_INTERNAL, "bad_config", "port_file %s: %s", path,
		               strerror(errno));
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		return err_set(e, ERR_INTERNAL, "bad_config", "port_file %s: %s", path,
		               strerror(errno));
	return 0;
}

void daemon_block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int daemon_wait_for_stop(const char *ident, sigset_t *set)
{
	int sig = 0;

	while (sigwait(set, &sig) == 0 && sig == SIGHUP)
		log_info(NULL, "%s: SIGHUP ignored: restart to reload the configuration", ident);
	log_info(NULL, "signal %d: stopping", sig);
	return sig;
}
