/*
 * issuer.c - the domains' issuer keys on disk.
 *
 * key_dir/<domain>.issuer.key, PKCS#8 PEM, 0600, written to a temporary name,
 * fsync'd and renamed so that a crash leaves either the old state or the new,
 * never half a key.  The database holds certificates only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "ks.h"

static void key_path(const struct ks *ks, const char *domain, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.issuer.key", ks->cfg.key_dir, domain);
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int ks_issuer_key_save(const struct ks *ks, const char *domain, EVP_PKEY *key, struct err *e)
{
	char final[4096], tmp[4200], rnd[CRYPTO_UUID_LEN];

	key_path(ks, domain, final, sizeof(final));
	if (crypto_uuid_v4(rnd, e) < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s/.%s.issuer.key.%s", ks->cfg.key_dir, domain, rnd);
	if (crypto_key_write_private(tmp, key, e) < 0)
		return -1;
	if (rename(tmp, final) < 0) {
		err_set(e, ERR_INTERNAL, "internal", "cannot store the issuer key: %s",
			strerror(errno));
		unlink(tmp);
		return -1;
	}
	sync_dir(ks->cfg.key_dir);
	return 0;
}

EVP_PKEY *ks_issuer_key_load(const struct ks *ks, const char *domain, struct err *e)
{
	char path[4096];
	EVP_PKEY *key;

	key_path(ks, domain, path, sizeof(path));
	key = crypto_key_read_private(path, e);
	if (key == NULL)
		err_set(e, ERR_INTERNAL, "internal",
			"the issuer key of %s cannot be read from key_dir", domain);
	return key;
}

void ks_issuer_key_remove(const struct ks *ks, const char *domain)
{
	char path[4096];

	key_path(ks, domain, path, sizeof(path));
	unlink(path);
}
