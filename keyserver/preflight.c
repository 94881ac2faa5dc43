/*
 * preflight.c - what a start of anchor-keyserver needs, checked without starting it
 * (anchor-keyserver -n, and the first thing a start does): the TLS files readable and
 * matching, the issuer KEK file readable or its directory there and writable (the signer
 * makes the file, 0600, at its first start), sql_dir holding migrations, and the
 * database reachable.  Each error names the setting to fix.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/db.h"
#include "settings.h"

/* The file must open for reading: a start reads it as this user. */
static int readable(const char *setting, const char *path, struct err *e)
{
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return err_set(e, ERR_INPUT, "bad_config", "%s: cannot read %s: %s", setting, path,
		               strerror(errno));
	fclose(f);
	return 0;
}

static int tls_files(const struct ks_settings *s, struct err *e)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	FILE *f;
	int rc = -1;

	if (s->tls_cert_file == NULL && s->tls_key_file == NULL)
		return 0; /* allow_plain_http: ks_settings_check has said it is allowed */
	if (readable("tls_cert_file", s->tls_cert_file, e) < 0 ||
	    readable("tls_key_file", s->tls_key_file, e) < 0)
		return -1;
	if ((f = fopen(s->tls_cert_file, "r")) != NULL) {
		cert = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	if ((f = fopen(s->tls_key_file, "r")) != NULL) {
		key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (cert == NULL)
		err_set(e, ERR_INPUT, "bad_config", "tls_cert_file: %s holds no PEM certificate",
		        s->tls_cert_file);
	else if (key == NULL)
		err_set(e, ERR_INPUT, "bad_config",
		        "tls_key_file: %s holds no unencrypted PEM private key", s->tls_key_file);
	else if (X509_check_private_key(cert, key) != 1)
		err_set(e, ERR_INPUT, "bad_config",
		        "tls_key_file: %s is not the key of the certificate in tls_cert_file %s",
		        s->tls_key_file, s->tls_cert_file);
	else
		rc = 0;
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

/* An existing KEK file must be readable; a missing one is made at the first start, so its
 * directory must exist and be writable. */
static int kek_file(const char *path, struct err *e)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (path[0] == '\0')
		return err_set(e, ERR_INPUT, "bad_config", "issuer_kek_file is empty");
	if (stat(path, &st) == 0)
		return S_ISREG(st.st_mode)
		           ? readable("issuer_kek_file", path, e)
		           : err_set(e, ERR_INPUT, "bad_config",
		                     "issuer_kek_file: %s is not a regular file", path);
	if (errno != ENOENT)
		return err_set(e, ERR_INPUT, "bad_config", "issuer_kek_file: %s: %s", path,
		               strerror(errno));
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(e, ERR_INPUT, "bad_config",
		               "issuer_kek_file: directory %s does not exist (the file is made "
		               "there, 0600, at the first start)",
		               dir);
	if (access(dir, W_OK) < 0)
		return err_set(e, ERR_INPUT, "bad_config",
		               "issuer_kek_file: directory %s is not writable by this user (the "
		               "file is made there, 0600, at the first start)",
		               dir);
	return 0;
}

static int reachable(const char *setting, const char *conninfo, struct err *e)
{
	struct db *db = db_connect(conninfo, e);
	char why[ERR_MSG_MAX];

	if (db != NULL) {
		db_close(db);
		return 0;
	}
	snprintf(why, sizeof(why), "%s", e->msg);
	return err_set(e, ERR_INPUT, "bad_config", "%s: the database is not reachable: %s", setting,
	               why);
}

int ks_preflight(const struct ks_settings *s, struct err *e)
{
	if (tls_files(s, e) < 0 || kek_file(s->issuer_kek_file, e) < 0)
		return -1;
	if (s->migrate_on_start && db_migrations_count(s->sql_dir, e) < 0)
		return -1;
	if (reachable("db_conninfo", s->db_conninfo, e) < 0)
		return -1;
	if (s->signer_db_conninfo != NULL && s->signer_db_conninfo[0] != '\0' &&
	    reachable("signer_db_conninfo", s->signer_db_conninfo, e) < 0)
		return -1;
	if (s->db_read_conninfo != NULL && s->db_read_conninfo[0] != '\0' &&
	    reachable("db_read_conninfo", s->db_read_conninfo, e) < 0)
		return -1;
	return 0;
}
