/* keywrap.c - AES-256-GCM sealed private keys; see keywrap.h. */
#include "pki/keywrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "pki/crypto.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define PREFIX "v1:"

/* Write a new KEK under a temporary name and link it into place, so that a reader never
 * sees half a key; returns 1 when another process made the file first. */
static int kek_create(const char *path, uint8_t kek[KEYWRAP_KEK_LEN], struct err *e)
{
	char tmp[4096];
	int fd, rc = 0;

	if (RAND_bytes(kek, KEYWRAP_KEK_LEN) != 1)
		return err_set(e, ERR_INTERNAL, "internal", "no randomness for a new KEK");
	snprintf(tmp, sizeof(tmp), "%s.new.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return err_set(e, ERR_INTERNAL, "bad_config", "%s: %s", tmp, strerror(errno));
	if (write(fd, kek, KEYWRAP_KEK_LEN) != KEYWRAP_KEK_LEN || fsync(fd) != 0)
		rc = err_set(e, ERR_INTERNAL, "bad_config", "%s: cannot write", tmp);
	close(fd);
	if (rc == 0 && link(tmp, path) < 0)
		rc = errno == EEXIST
		         ? 1
		         : err_set(e, ERR_INTERNAL, "bad_config", "%s: %s", path, strerror(errno));
	unlink(tmp);
	if (rc != 0)
		OPENSSL_cleanse(kek, KEYWRAP_KEK_LEN);
	return rc;
}

int keywrap_kek_load(const char *path, int create, uint8_t kek[KEYWRAP_KEK_LEN], int *created,
                     struct err *e)
{
	uint8_t buf[KEYWRAP_KEK_LEN + 1];
	struct stat st;
	ssize_t n;
	int fd;

	*created = 0;
	fd = open(path, O_RDONLY);
	if (fd < 0 && errno == ENOENT && create) {
		int rc = kek_create(path, kek, e);
		if (rc <= 0) {
			*created = rc == 0;
			return rc;
		}
		fd = open(path, O_RDONLY); /* someone else made it first: use theirs */
	}
	if (fd < 0)
		return err_set(e, ERR_INTERNAL, "bad_config", "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) == 0 && (st.st_mode & 0077)) {
		close(fd);
		return err_set(e, ERR_INTERNAL, "bad_config",
		               "%s is readable by others; chmod 600 it", path);
	}
	/* One byte more than a KEK: a longer file is refused, not truncated. */
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != KEYWRAP_KEK_LEN) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return err_set(e, ERR_INTERNAL, "bad_config",
		               "%s must hold exactly %d bytes (anchor-keyserver makes one when "
		               "the file does not exist)",
		               path, KEYWRAP_KEK_LEN);
	}
	memcpy(kek, buf, KEYWRAP_KEK_LEN);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* Run AES-256-GCM one way or the other over in[0..len). */
static int gcm(int enc, const uint8_t kek[KEYWRAP_KEK_LEN], const uint8_t nonce[NONCE_LEN],
               const char *owner, const uint8_t *in, int len, uint8_t *out, uint8_t tag[TAG_LEN])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0, ok;

	ok = c != NULL && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, kek, nonce, enc) == 1 &&
	     EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)owner, (int)strlen(owner)) == 1 &&
	     EVP_CipherUpdate(c, out, &n, in, len) == 1 &&
	     (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1) &&
	     EVP_CipherFinal_ex(c, out + n, &fin) == 1 &&
	     (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1);
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

char *keywrap_seal(const uint8_t kek[KEYWRAP_KEK_LEN], const char *owner, EVP_PKEY *key,
                   struct err *e)
{
	uint8_t *der = NULL, *buf = NULL;
	char *b64 = NULL, *out = NULL;
	int len = i2d_PrivateKey(key, &der);

	if (len <= 0 || (buf = malloc((size_t)len + NONCE_LEN + TAG_LEN)) == NULL)
		goto out;
	if (RAND_bytes(buf, NONCE_LEN) != 1 ||
	    gcm(1, kek, buf, owner, der, len, buf + NONCE_LEN, buf + NONCE_LEN + len) < 0)
		goto out;
	b64 = crypto_b64_encode(buf, (size_t)len + NONCE_LEN + TAG_LEN);
	if (b64 != NULL && asprintf(&out, PREFIX "%s", b64) < 0)
		out = NULL;
out:
	if (der != NULL)
		OPENSSL_clear_free(der, (size_t)len);
	free(buf);
	free(b64);
	if (out == NULL)
		err_set(e, ERR_INTERNAL, "internal", "cannot seal the key");
	return out;
}

EVP_PKEY *keywrap_open(const uint8_t kek[KEYWRAP_KEK_LEN], const char *owner, const char *text,
                       struct err *e)
{
	size_t len = 0;
	uint8_t *raw = NULL, *plain = NULL;
	const uint8_t *p;
	EVP_PKEY *key = NULL;
	int clen;

	if (text == NULL || strncmp(text, PREFIX, strlen(PREFIX)) != 0 ||
	    (raw = crypto_b64_decode(text + strlen(PREFIX), &len)) == NULL ||
	    len <= NONCE_LEN + TAG_LEN)
		goto out;
	clen = (int)(len - NONCE_LEN - TAG_LEN);
	if ((plain = malloc((size_t)clen)) == NULL ||
	    gcm(0, kek, raw, owner, raw + NONCE_LEN, clen, plain, raw + NONCE_LEN + clen) < 0)
		goto out;
	p = plain;
	key = d2i_AutoPrivateKey(NULL, &p, clen);
out:
	if (plain != NULL)
		OPENSSL_clear_free(plain, (size_t)(len - NONCE_LEN - TAG_LEN));
	free(raw);
	if (key == NULL)
		err_set(e, ERR_INTERNAL, "key_unsealable",
		        "the issuer key of %s cannot be unsealed (a different issuer_kek_file on "
		        "this node?)",
		        owner);
	return key;
}
