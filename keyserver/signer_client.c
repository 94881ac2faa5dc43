/*
 * signer_client.c - the HTTPS process's side of the signer (signer.c): every
 * issuance and signature goes through here, over the signer's socket.
 *
 * The signer may be down (it is being restarted): a call then fails with
 * ERR_TEMP "signer_unavailable", which the client gets as 503.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ks.h"
#include "ks_signer_proto.h"

#define KS_SIGNER_TIMEOUT_MS 30000

struct frame_client *ks_signer_client_new(const char *socket_path, struct err *e)
{
	return frame_client_new(socket_path, "signer", KS_SIGNER_TIMEOUT_MS, e);
}

/* A text answer field into out (cap bytes, NUL-terminated). */
static int answer_str(const struct frame_field *f, char *out, size_t cap, struct err *e)
{
	struct err why = {0};

	if (frame_field_str(f, out, cap, &why) < 0)
		return err_set(e, ERR_TEMP, "signer_garbage", "the signer's answer is garbled");
	return 0;
}

static int call(struct ks *ks, enum ks_signer_op op, const struct frame_field *f, int n,
                int nfields, struct frame_msg *ans, uint8_t **buf, struct err *e)
{
	int rc;

	if (ks->signer == NULL)
		return err_set(e, ERR_TEMP, "signer_unavailable", "no signer");
	rc = frame_client_call(ks->signer, (uint8_t)op, f, n, nfields, ans, buf, e);
	/* A refusal is an answer: only "unavailable" or "timeout" says the signer is down. */
	if (rc < 0 && e->kind == ERR_TEMP && strstr(e->code, "signer_") == e->code &&
	    (strstr(e->code, "unavailable") != NULL || strstr(e->code, "timeout") != NULL)) {
		atomic_store(&ks->signer_down, 1);
		atomic_fetch_add(&ks->signer_failures, 1);
	} else {
		atomic_store(&ks->signer_down, 0);
	}
	return rc;
}

int ks_signer_register(struct ks *ks, const char *domain, const char *const pem[3],
                       const char *policy, const char *mode, const char *operator_token,
                       char pin[CRYPTO_PIN_MAX], char admin_token[CRYPTO_TOKEN_LEN], struct err *e)
{
	struct frame_field f[7] = {frame_str(domain),        frame_str(pem[0]), frame_str(pem[1]),
	                           frame_str(pem[2]),        frame_str(policy), frame_str(mode),
	                           frame_str(operator_token)};
	struct frame_msg ans;
	uint8_t *buf = NULL;
	int rc = -1;

	if (call(ks, KS_SIGNER_REGISTER, f, 7, 2, &ans, &buf, e) == 0 &&
	    answer_str(&ans.f[0], pin, CRYPTO_PIN_MAX, e) == 0 &&
	    answer_str(&ans.f[1], admin_token, CRYPTO_TOKEN_LEN, e) == 0)
		rc = 0;
	free(buf);
	return rc;
}

int ks_signer_token(struct ks *ks, const char *domain, const char *admin_token, const char *address,
                    long long ttl, char token[CRYPTO_TOKEN_LEN], char expires[32], struct err *e)
{
	char ttlbuf[24];
	struct frame_field f[4];
	struct frame_msg ans;
	uint8_t *buf = NULL;
	int rc = -1;

	snprintf(ttlbuf, sizeof(ttlbuf), "%lld", ttl);
	f[0] = frame_str(domain);
	f[1] = frame_str(admin_token);
	f[2] = frame_str(address);
	f[3] = frame_str(ttlbuf);
	if (call(ks, KS_SIGNER_TOKEN, f, 4, 2, &ans, &buf, e) == 0 &&
	    answer_str(&ans.f[0], token, CRYPTO_TOKEN_LEN, e) == 0 &&
	    answer_str(&ans.f[1], expires, 32, e) == 0)
		rc = 0;
	free(buf);
	return rc;
}

int ks_signer_enroll(struct ks *ks, const char *domain, const char *token, const char *csr,
                     char key_id[CRYPTO_UUID_LEN], char secret[CRYPTO_TOKEN_LEN], struct err *e)
{
	struct frame_field f[3] = {frame_str(domain), frame_str(token), frame_str(csr)};
	struct frame_msg ans;
	uint8_t *buf = NULL;
	int rc = -1;

	if (call(ks, KS_SIGNER_ENROLL, f, 3, 2, &ans, &buf, e) == 0 &&
	    answer_str(&ans.f[0], key_id, CRYPTO_UUID_LEN, e) == 0 &&
	    answer_str(&ans.f[1], secret, CRYPTO_TOKEN_LEN, e) == 0)
		rc = 0;
	free(buf);
	return rc;
}

int ks_signer_encrypt(struct ks *ks, const char *domain, const char *challenge, const char *answer,
                      const char *token, const char *jws, char key_id[CRYPTO_UUID_LEN],
                      char secret[CRYPTO_TOKEN_LEN], struct err *e)
{
	struct frame_field f[5] = {frame_str(domain), frame_str(challenge), frame_str(answer),
	                           frame_str(token ? token : ""), frame_str(jws ? jws : "")};
	struct frame_msg ans;
	uint8_t *buf = NULL;
	int rc = -1;

	if (call(ks, KS_SIGNER_ENCRYPT, f, 5, 2, &ans, &buf, e) == 0 &&
	    answer_str(&ans.f[0], key_id, CRYPTO_UUID_LEN, e) == 0 &&
	    answer_str(&ans.f[1], secret, CRYPTO_TOKEN_LEN, e) == 0)
		rc = 0;
	free(buf);
	return rc;
}

int ks_signer_renew(struct ks *ks, const char *domain, const char *jws,
                    char key_id[CRYPTO_UUID_LEN], char secret[CRYPTO_TOKEN_LEN], struct err *e)
{
	struct frame_field f[2] = {frame_str(domain), frame_str(jws)};
	struct frame_msg ans;
	uint8_t *buf = NULL;
	int rc = -1;

	/* A server certificate has no revocation secret: the second field is then empty. */
	secret[0] = '\0';
	if (call(ks, KS_SIGNER_RENEW, f, 2, 2, &ans, &buf, e) == 0 &&
	    answer_str(&ans.f[0], key_id, CRYPTO_UUID_LEN, e) == 0 &&
	    (ans.f[1].len == 0 || answer_str(&ans.f[1], secret, CRYPTO_TOKEN_LEN, e) == 0))
		rc = 0;
	free(buf);
	return rc;
}

int ks_signer_server(struct ks *ks, const char *domain, const char *admin_token,
                     const char *purpose, const char *csr, char key_id[CRYPTO_UUID_LEN],
                     struct err *e)
{
	struct frame_field f[4] = {frame_str(domain), frame_str(admin_token), frame_str(purpose),
	                           frame_str(csr)};
	struct frame_msg ans;
	uint8_t *buf = NULL;
	int rc = -1;

	if (call(ks, KS_SIGNER_SERVER, f, 4, 1, &ans, &buf, e) == 0 &&
	    answer_str(&ans.f[0], key_id, CRYPTO_UUID_LEN, e) == 0)
		rc = 0;
	free(buf);
	return rc;
}

int ks_signer_acme(struct ks *ks, const char *domain, const char *order_id, const char *csr,
                   char key_id[CRYPTO_UUID_LEN], struct err *e)
{
	struct frame_field f[3] = {frame_str(domain), frame_str(order_id), frame_str(csr)};
	struct frame_msg ans;
	uint8_t *buf = NULL;
	int rc = -1;

	if (call(ks, KS_SIGNER_ACME, f, 3, 1, &ans, &buf, e) == 0 &&
	    answer_str(&ans.f[0], key_id, CRYPTO_UUID_LEN, e) == 0)
		rc = 0;
	free(buf);
	return rc;
}

unsigned char *ks_signer_crl(struct ks *ks, const char *domain, size_t *len, struct err *e)
{
	struct frame_field f[1] = {frame_str(domain)};
	struct frame_msg ans;
	uint8_t *buf = NULL;
	unsigned char *der = NULL;

	if (call(ks, KS_SIGNER_CRL, f, 1, 1, &ans, &buf, e) == 0) {
		if (ans.f[0].len == 0 || (der = malloc(ans.f[0].len)) == NULL) {
			err_set(e, ERR_TEMP, "signer_garbage", "the signer's CRL is empty");
		} else {
			memcpy(der, ans.f[0].p, ans.f[0].len);
			*len = ans.f[0].len;
		}
	}
	free(buf);
	return der;
}

/* The answer's one text field, malloc'd with its NUL. */
static char *call_text(struct ks *ks, enum ks_signer_op op, struct frame_field *f, int n,
                       struct err *e)
{
	struct frame_msg ans;
	uint8_t *buf = NULL;
	char *text = NULL;

	if (call(ks, op, f, n, 1, &ans, &buf, e) == 0) {
		if ((text = malloc(ans.f[0].len + 1)) == NULL) {
			err_set(e, ERR_INTERNAL, "internal", "out of memory");
		} else {
			memcpy(text, ans.f[0].p, ans.f[0].len);
			text[ans.f[0].len] = '\0';
		}
	}
	free(buf);
	return text;
}

char *ks_signer_route(struct ks *ks, const char *domain, const char *name, struct err *e)
{
	struct frame_field f[2] = {frame_str(domain), frame_str(name)};

	return call_text(ks, KS_SIGNER_ROUTE, f, 2, e);
}

char *ks_signer_route_set(struct ks *ks, const char *domain, const char *name, const char *set_by,
                          const char *route_json, struct err *e)
{
	struct frame_field f[4] = {frame_str(domain), frame_str(name), frame_str(set_by),
	                           frame_str(route_json)};

	return call_text(ks, KS_SIGNER_ROUTE_SET, f, 4, e);
}

int ks_signer_publish(struct ks *ks, const char *domain, long long *size, struct err *e)
{
	struct frame_field f[1] = {frame_str(domain)};
	struct frame_msg ans;
	uint8_t *buf = NULL;
	char num[24];
	int rc = -1;

	if (call(ks, KS_SIGNER_PUBLISH, f, 1, 1, &ans, &buf, e) == 0 &&
	    answer_str(&ans.f[0], num, sizeof(num), e) == 0) {
		*size = strtoll(num, NULL, 10);
		rc = 0;
	}
	free(buf);
	return rc;
}
