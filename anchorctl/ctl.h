/*
 * ctl.h - what every anchorctl command shares: the global options, the exit
 * statuses, and the command entry points that main.c dispatches to.
 *
 * A command returns its exit status: CTL_OK, CTL_FAIL (an error reported by
 * the server or a local failure, already printed as "anchorctl: code:
 * message") or CTL_USAGE (a usage error, already printed with the command's
 * synopsis).
 */
#ifndef ANCHORCTL_CTL_H
#define ANCHORCTL_CTL_H

#include "core/err.h"

enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };

/* Global options; every command also accepts them after its own words. */
struct ctl {
	const char *server;     /* key server base URL (-s, ANCHOR_SERVER) */
	const char *cacert;     /* CA file for the server's TLS (--cacert, ANCHOR_CACERT) */
	const char *conf;       /* keyserver.conf for the db commands (-c) */
	const char *token_file; /* --token-file */
	const char *resolve;    /* --resolve HOST:PORT:ADDR, as curl's */
	int json;               /* --json: machine output */
};

struct ctl_cmd;
typedef int (*ctl_cmd_fn)(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

struct ctl_cmd {
	const char *word;     /* "domain", "pin", ... */
	const char *sub;      /* "init", ... or NULL for one-word commands */
	ctl_cmd_fn run;       /* argv[0] is the last command word */
	const char *synopsis; /* arguments after the words */
	const char *help;     /* one paragraph, lines of at most 78 columns */
};

/* Print "anchorctl: code: message" for e and return CTL_FAIL. */
int ctl_fail(const struct err *e);
/* Print "anchorctl: <message>" and the command's usage line; returns CTL_USAGE. */
int ctl_usage(const struct ctl_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print the command's synopsis and help to stdout; returns CTL_OK. */
int ctl_help(const struct ctl_cmd *cmd);

/* Commands (cmd_*.c). */
int ctl_cmd_domain_init(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_domain_register(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_key_new(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_key_enroll(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_key_renew(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_pin(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_token_issue(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_server_issue(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_policy_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_domain_renewal(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_group_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_group_delete(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_lookup(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_db_migrate(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_operator_token(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
/* S/MIME (cmd_mail.c). */
int ctl_cmd_mail_encrypt(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_mail_decrypt(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_mail_sign(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_mail_verify(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

#endif
