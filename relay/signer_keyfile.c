/*
 * signer_keyfile.c - reading the signer's key files: a private key from a
 * file only its owner may read (as ssh insists), bounded in size and kept in
 * OpenSSL's secure heap while parsed; the key's fitness for DKIM; small
 * public files (the report chain).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "pki/crypto.h"
#include "signer_keyfile.h"

#define SIGNER_FILE_MAX (64 * 1024)

/*
 * A private key from a file only its owner may read.  nofollow: refuse a
 * symbolic link (users' files); the operator's configured paths may be links.
 */
EVP_PKEY *relay_signer_key_read(int dirfd, const char *path, int nofollow, struct stat *st,
                                struct err *e)
{
	int fd = openat(dirfd, path,
	                O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	EVP_PKEY *key = NULL;
	struct err why = {0};

	if (fd < 0) {
		err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_FORBIDDEN, "key_file",
		        "cannot open the key file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		err_set(e, ERR_FORBIDDEN, "key_file", "the key file %s is not a regular file",
		        path);
		goto out;
	}
	if ((st->st_mode & 077) != 0) {
		err_set(e, ERR_FORBIDDEN, "key_mode",
		        "the key file %s is mode %04o: a private key must be readable by its owner "
		        "alone (chmod 600 %s)",
		        path, (unsigned)(st->st_mode & 07777), path);
		goto out;
	}
	if ((buf = OPENSSL_secure_zalloc(SIGNER_FILE_MAX + 1)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	while (
	    len <= SIGNER_FILE_MAX &&
	    ((n = read(fd, buf + len, SIGNER_FILE_MAX + 1 - len)) > 0 || (n < 0 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	if (len == 0 || len > SIGNER_FILE_MAX) {
		err_set(e, ERR_INPUT, "bad_key", "the key file %s is empty or too large", path);
		goto out;
	}
	if ((key = crypto_key_private_from_pem(buf, len, &why)) == NULL)
		err_set(e, ERR_INPUT, "bad_key", "the key file %s holds no PEM private key", path);
out:
	OPENSSL_secure_clear_free(buf, SIGNER_FILE_MAX + 1);
	close(fd);
	return key;
}

/* DKIM keys: Ed25519, or RSA of at least 2048 bits. */
int relay_signer_dkim_key_ok(EVP_PKEY *key, const char *path, enum dkim_alg *alg, struct err *e)
{
	struct err why = {0};

	if (dkim_key_alg(key, alg, &why) < 0)
		return err_set(e, ERR_UNPROC, "bad_key", "%s: %s", path, why.msg);
	if (*alg == DKIM_RSA_SHA256 && EVP_PKEY_get_bits(key) < CRYPTO_RSA_MIN_BITS)
		return err_set(e, ERR_UNPROC, "weak_key", "%s: an RSA key of %d bits (at least %d)",
		               path, EVP_PKEY_get_bits(key), CRYPTO_RSA_MIN_BITS);
	return 0;
}

/* A small file (a certificate chain), NUL-terminated, malloc'd. */
char *relay_signer_file_read(const char *path, struct err *e)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n;

	if (f == NULL) {
		err_set(e, ERR_NOTFOUND, "bad_setting", "cannot open %s: %s", path,
		        strerror(errno));
		return NULL;
	}
	if ((buf = calloc(1, SIGNER_FILE_MAX + 1)) != NULL &&
	    ((n = fread(buf, 1, SIGNER_FILE_MAX + 1, f)) == 0 || n > SIGNER_FILE_MAX)) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf == NULL)
		err_set(e, ERR_INPUT, "bad_setting", "%s is empty or too large", path);
	return buf;
}
