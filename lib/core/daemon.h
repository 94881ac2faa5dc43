/*
 * daemon.h - what every Anchormail daemon does the same way around its own work:
 * the command line (-c file, -n check only, -o name=value, -v), loading the typed
 * configuration with the overrides, applying the schema migrations, writing the
 * bound port for whoever started us, and waiting for the stop signal.
 */
#ifndef ANCHOR_DAEMON_H
#define ANCHOR_DAEMON_H

#include <signal.h>

#include "core/conf.h"
#include "core/err.h"

struct daemon_opts {
	const char *config;
	int check_only;   /* -n */
	int verbose;      /* -v */
	char **overrides; /* -o name=value, pointers into argv */
	int noverrides;
};

/* Parse argv; -1 on a usage error (the caller prints its usage line). */
int daemon_opts_parse(int argc, char **argv, const char *default_config, struct daemon_opts *o);
void daemon_opts_free(struct daemon_opts *o); /* accepts NULL members */

/* conf_load, then each -o override in order. */
int daemon_settings_load(const struct conf_param *table, void *settings,
                         const struct daemon_opts *o, struct err *e);

/* Apply the migrations in sql_dir over one connection; logs how many were applied. */
int daemon_migrate(const char *conninfo, const char *sql_dir, struct err *e);

/* Write "port\n" to path atomically (tests and scripts wait for it). */
int daemon_write_port_file(const char *path, int port, struct err *e);

/* Block SIGTERM, SIGINT and SIGHUP in this thread and every thread it starts, and
 * ignore SIGPIPE; call before starting threads. */
void daemon_block_signals(sigset_t *set);
/* Wait for SIGTERM or SIGINT (SIGHUP is logged and ignored); returns the signal. */
int daemon_wait_for_stop(const char *ident, sigset_t *set);

#endif
