/*
 * cmd_operator.c - the key server operator's local commands: "db migrate"
 * and "operator token".
 *
 * db migrate finds the database like the key server does: --conninfo and
 * --sql-dir win; else, with -c FILE, the file's db_conninfo and sql_dir (the
 * key server's defaults when absent); else ANCHOR_DB and ANCHOR_SQL_DIR;
 * else the defaults.  Only those two settings are read from the file, by a
 * tolerant reader, so that anchorctl does not need the server's whole table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "pki/crypto.h"
#include "core/db.h"

#define DB_CONNINFO_DEFAULT "dbname=anchor"
#define SQL_DIR_DEFAULT "/usr/local/share/anchor/sql"

/* One setting: the option, else the conf file, else the environment, else def. */
static char *setting(const char *opt, const char *conf_text, const char *name, const char *env,
                     const char *def)
{
	const char *v;

	if (opt != NULL)
		return strdup(opt);
	if (conf_text != NULL) {
		char *picked = ctl_conf_pick(conf_text, name);

		return picked != NULL ? picked : strdup(def);
	}
	v = getenv(env);
	return strdup(v != NULL && *v != '\0' ? v : def);
}

int ctl_cmd_db_migrate(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *conninfo_opt = NULL, *sql_dir_opt = NULL;
	const struct ctl_opt opts[] = {
	    {"--conninfo", &conninfo_opt, NULL},
	    {"--sql-dir", &sql_dir_opt, NULL},
	    CTL_COMMON_OPTS(ctl),
	    {NULL, NULL, NULL},
	};
	char *conf_text = NULL, *conninfo = NULL, *sql_dir = NULL;
	struct ctl_args a;
	struct err e = {0};
	struct db *db = NULL;
	int status = CTL_FAIL, applied;

	if (ctl_parse(cmd, opts, argc, argv, 0, 0, &a, &status) < 0)
		return status;
	if (ctl->conf != NULL && (conf_text = ctl_file_read(ctl->conf, NULL, &e)) == NULL)
		return ctl_fail(&e);
	conninfo =
	    setting(conninfo_opt, conf_text, "db_conninfo", "ANCHOR_DB", DB_CONNINFO_DEFAULT);
	sql_dir = setting(sql_dir_opt, conf_text, "sql_dir", "ANCHOR_SQL_DIR", SQL_DIR_DEFAULT);
	if (conninfo == NULL || sql_dir == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto fail;
	}
	if ((db = db_connect(conninfo, &e)) == NULL || (applied = db_migrate(db, sql_dir, &e)) < 0)
		goto fail;
	printf("applied %d migration%s from %s\n", applied, applied == 1 ? "" : "s", sql_dir);
	status = CTL_OK;
	goto out;
fail:
	status = ctl_fail(&e);
out:
	db_close(db);
	if (conf_text != NULL)
		explicit_bzero(conf_text, strlen(conf_text)); /* conninfo may hold a password */
	if (conninfo != NULL)
		explicit_bzero(conninfo, strlen(conninfo));
	free(conf_text);
	free(conninfo);
	free(sql_dir);
	return status;
}

static int hash_only(void)
{
	char hash[CRYPTO_HEX256_LEN];
	char token[CTL_TOKEN_MAX];
	struct err e = {0};

	if (ctl_token_read("-", token, &e) < 0)
		return ctl_fail(&e);
	crypto_token_hash(token, hash);
	explicit_bzero(token, sizeof(token));
	printf("operator_token_hash = %s\n", hash);
	return CTL_OK;
}

int ctl_cmd_operator_token(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	int only_hash = 0;
	const struct ctl_opt opts[] = {
	    {"--hash-only", NULL, &only_hash}, CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	char token[CRYPTO_TOKEN_LEN];
	char hash[CRYPTO_HEX256_LEN];
	struct ctl_args a;
	struct err e = {0};
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 0, 0, &a, &status) < 0)
		return status;
	if (only_hash)
		return hash_only();
	if (crypto_random_token(token, &e) < 0)
		return ctl_fail(&e);
	crypto_token_hash(token, hash);
	/* The token goes to the operator once, here; the server only ever sees its hash. */
	printf("%s\n", token);
	printf("operator_token_hash = %s\n", hash);
	explicit_bzero(token, sizeof(token));
	return CTL_OK;
}
